"""TRPO machinery as pure functions: KL Hessian-vector products, conjugate gradient, line search.

Works on flat parameter vectors; ``trpo_step`` ravels a parameter pytree and unravels the result.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def hvp_at(fn: Callable, x: jax.Array) -> Callable:
    """``v -> (d^2 fn / dx^2)(x) v`` by forward-over-reverse autodiff, linearised once at ``x``."""
    _, linear = jax.linearize(jax.grad(fn), x)
    return linear


class OutputLinearization(NamedTuple):
    """``outputs_fn`` linearised once at ``x``: its value, ``v -> J v`` and ``u -> J^T u``."""

    outputs: object
    jvp: Callable
    vjp: Callable


def linearize_outputs(outputs_fn: Callable, x) -> OutputLinearization:
    outputs, jvp = jax.linearize(outputs_fn, x)
    transpose = jax.linear_transpose(jvp, x)
    return OutputLinearization(outputs, jvp, lambda u: transpose(u)[0])


def gauss_newton_product(lin: OutputLinearization, divergence_fn: Callable) -> Callable:
    """``v -> J^T H J v``: ``J`` the Jacobian behind ``lin`` (an ``OutputLinearization``), ``H`` the
    Hessian of ``divergence_fn`` at ``lin.outputs``, linearised once.

    For ``divergence(outputs) = KL(old || policy(outputs))`` with ``lin.outputs`` giving the old
    policy, the divergence's gradient vanishes there and this equals the KL Hessian product (the
    Fisher-vector product) without differentiating the network three times.
    """
    output_hvp = hvp_at(divergence_fn, lin.outputs)
    return lambda v: lin.vjp(output_hvp(lin.jvp(v)))


def gauss_newton_product_at(outputs_fn: Callable, divergence_fn: Callable, x) -> Callable:
    """``gauss_newton_product`` with ``outputs_fn`` linearised generically at ``x``."""
    return gauss_newton_product(linearize_outputs(outputs_fn, x), divergence_fn)


def finite_difference_product_at(grad_fn: Callable, x: jax.Array, base_eps: float) -> Callable:
    """``v -> (grad_fn(x + e v) - grad_fn(x - e v)) / 2e`` with ``e = base_eps / |x|``: rllab's
    finite-difference Hessian-vector product; the Hessian product as ``e |v| -> 0`` only where
    ``grad_fn`` is smooth (not across the jumps of a ReLU network's inner-loop gradient)."""
    eps = base_eps / (jnp.linalg.norm(x) + 1e-8)
    return lambda v: (grad_fn(x + eps * v) - grad_fn(x - eps * v)) / (2.0 * eps)


def conjugate_gradient(matvec: Callable, b: jax.Array, iters: int = 10, tol: float = 1e-10):
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``v -> A v``."""
    return _conjugate_gradient(matvec, b, iters, tol)[0]


def _conjugate_gradient(matvec: Callable, b: jax.Array, iters: int, tol: float = 1e-10):
    """``(x, r)``: the CG solution and its residual ``r = b - A x`` (tracked by the recursion)."""

    def body(_, carry):
        x, r, p, rr = carry
        ap = matvec(p)
        alpha = rr / (jnp.vdot(p, ap) + 1e-20)
        x_new = x + alpha * p
        r_new = r - alpha * ap
        rr_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rr_new / (rr + 1e-20)) * p
        done = rr < tol  # freeze once converged (rllab stops early at the same tolerance)
        pick = lambda new, old: jnp.where(done, old, new)
        return pick(x_new, x), pick(r_new, r), pick(p_new, p), pick(rr_new, rr)

    x0 = jnp.zeros_like(b)
    x, r, *_ = jax.lax.fori_loop(0, iters, body, (x0, b, b, jnp.vdot(b, b)))
    return x, r


class LineSearchResult(NamedTuple):
    params: jax.Array
    accepted: jax.Array  # bool
    backtracks: jax.Array  # int32, number of halvings tried before acceptance
    loss: jax.Array
    kl: jax.Array


def backtracking_line_search(
    loss_and_kl_fn: Callable,
    x: jax.Array,
    full_step: jax.Array,
    loss_before: jax.Array,
    max_kl: float,
    ratio: float = 0.8,
    max_backtracks: int = 15,
) -> LineSearchResult:
    """Try ``x + ratio^i * full_step`` for ``i = 0..max_backtracks-1``; accept the first candidate
    that lowers the loss and keeps ``kl <= max_kl``; otherwise keep ``x`` (rllab's rule).

    ``loss_and_kl_fn(x) -> (loss, kl)`` evaluates both at once (they usually share a forward pass).
    """

    def evaluate(i):
        candidate = x + ratio ** i.astype(x.dtype) * full_step
        return (candidate, *loss_and_kl_fn(candidate))

    def ok(loss, kl):
        return (loss < loss_before) & (kl <= max_kl) & jnp.isfinite(loss) & jnp.isfinite(kl)

    def cond(carry):  # candidate i has been evaluated; there are max_backtracks in all
        i, _, loss, kl = carry
        return (i + 1 < max_backtracks) & ~ok(loss, kl)

    def body(carry):
        i = carry[0] + 1
        candidate, loss, kl = evaluate(i)
        return i, candidate, loss, kl

    first = evaluate(jnp.zeros((), jnp.int32))
    i, candidate, loss, kl = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), *first))
    accepted = ok(loss, kl)
    return LineSearchResult(jnp.where(accepted, candidate, x), accepted, i, loss, kl)


class TRPOInfo(NamedTuple):
    loss_before: jax.Array
    loss_after: jax.Array
    kl: jax.Array
    accepted: jax.Array
    backtracks: jax.Array
    step_norm: jax.Array


def trpo_step(
    loss_fn: Callable,
    kl_fn: Callable,
    params,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    cg_damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    loss_and_kl_fn: Callable | None = None,
    kl_part_fn: Callable | None = None,
    num_parts: int = 1,
    kl_outputs: tuple[Callable, Callable] | None = None,
    loss_of_outputs: Callable | None = None,
    kl_outputs_part: tuple[Callable, Callable] | None = None,
    finite_difference_eps: float | None = None,
):
    """One natural-gradient step with a KL trust region (Schulman et al. 2015).

    Args:
      loss_fn: params -> scalar surrogate loss to minimise.
      kl_fn: params -> scalar mean KL(old policy || policy at params); 0 with zero gradient at
        ``params``.
      loss_and_kl_fn: optional params -> (loss, kl) sharing work, used by the line search.
      kl_part_fn: optional (params, i) -> KL of part i of the batch, with kl = mean_i of the
        ``num_parts`` parts; the Fisher-vector product is then the mean of the parts' products
        (``lax.map``), which bounds memory by one part at the cost of re-linearising each part per
        product.
      kl_outputs: optional ``(linearize_fn, divergence_fn)`` with ``kl_fn = divergence_fn o outputs_fn``
        (``outputs_fn(params)``: the policy's distribution parameters) and ``linearize_fn(params)``
        its ``OutputLinearization`` over the params pytree (``linearize_outputs(outputs_fn, params)``
        or one exploiting structure); the Fisher product is then the Gauss-Newton form
        ``J^T H J v`` (same value at ``params``, cheaper). Not with parts.
      loss_of_outputs: optional, with ``kl_outputs``: ``loss_fn = loss_of_outputs o outputs_fn``; the
        loss gradient is then ``J^T grad(loss_of_outputs)``, reusing the linearisation of ``outputs_fn``.
      kl_outputs_part: optional, with ``num_parts > 1``: the pair
        ``(outputs_fn(params, i), divergence_fn(outputs, i))`` for part ``i``; the Fisher product is
        then the mean of the parts' Gauss-Newton products (in place of ``kl_part_fn``'s KL Hessians;
        same value, cheaper).
      finite_difference_eps: optional ``base_eps``: replace the Fisher product by rllab's
        ``FiniteDifferenceHvp``, the central difference of the KL gradient over
        ``+-eps v`` with ``eps = base_eps / |params|`` (a secant, not the local curvature, when
        ``eps |v|`` is large), and take the step's curvature from one more such product.
    Returns:
      (new_params, TRPOInfo).
    """
    flat, unravel = ravel_pytree(params)
    flat_loss = lambda v: loss_fn(unravel(v))
    flat_kl = lambda v: kl_fn(unravel(v))
    if loss_and_kl_fn is None:
        flat_both = lambda v: (flat_loss(v), flat_kl(v))
    else:
        flat_both = lambda v: loss_and_kl_fn(unravel(v))
    if finite_difference_eps is not None:
        loss_before, grad = jax.value_and_grad(flat_loss)(flat)
        fisher = finite_difference_product_at(jax.grad(flat_kl), flat, finite_difference_eps)
    elif kl_outputs is not None and num_parts == 1:
        linearize_fn, divergence_fn = kl_outputs
        tree_lin = linearize_fn(params)
        lin = OutputLinearization(tree_lin.outputs, lambda v: tree_lin.jvp(unravel(v)),
                                  lambda u: ravel_pytree(tree_lin.vjp(u))[0])
        fisher = gauss_newton_product(lin, divergence_fn)
        if loss_of_outputs is not None:
            loss_before, output_grad = jax.value_and_grad(loss_of_outputs)(lin.outputs)
            grad = lin.vjp(output_grad)
        else:
            loss_before, grad = jax.value_and_grad(flat_loss)(flat)
    elif num_parts == 1 or (kl_part_fn is None and kl_outputs_part is None):
        loss_before, grad = jax.value_and_grad(flat_loss)(flat)
        fisher = hvp_at(flat_kl, flat)
    else:
        loss_before, grad = jax.value_and_grad(flat_loss)(flat)

        def part_product(i, v):
            if kl_outputs_part is None:
                return hvp_at(lambda x: kl_part_fn(unravel(x), i), flat)(v)
            outputs_part, divergence_part = kl_outputs_part
            return gauss_newton_product_at(lambda x: outputs_part(unravel(x), i),
                                           lambda out: divergence_part(out, i), flat)(v)

        def fisher(v):
            return jnp.mean(jax.lax.map(lambda i: part_product(i, v), jnp.arange(num_parts)), axis=0)
    matvec = lambda v: fisher(v) + cg_damping * v
    direction, residual = _conjugate_gradient(matvec, -grad, cg_iters)
    if finite_difference_eps is None:
        # x^T A x = x^T (b - r): the step's curvature without another Fisher product
        curvature = jnp.vdot(direction, -grad - residual)
        scale = jnp.sqrt(2.0 * max_kl / (curvature + 1e-20))
    else:  # the product is not linear in v, so measure it; rllab's fallback for a NaN step
        curvature = jnp.vdot(direction, matvec(direction))
        scale = jnp.sqrt(2.0 * max_kl / (curvature + 1e-8))
        scale = jnp.where(jnp.isnan(scale), 1.0, scale)
    full_step = scale * direction
    result = backtracking_line_search(
        flat_both, flat, full_step, loss_before, max_kl, backtrack_ratio, max_backtracks
    )
    info = TRPOInfo(
        loss_before,
        jnp.where(result.accepted, result.loss, loss_before),
        jnp.where(result.accepted, result.kl, 0.0),
        result.accepted,
        result.backtracks,
        jnp.linalg.norm(result.params - flat),
    )
    return unravel(result.params), info
