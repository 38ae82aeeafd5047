"""Conjugate gradient, Hessian-vector products, line search and the TRPO step on closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metajax import optim


def _spd(n=6, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return jnp.asarray(m @ m.T + n * np.eye(n), jnp.float32)


def test_hvp_equals_hessian_product():
    a = _spd()
    v = jnp.arange(6.0)
    fn = lambda x: 0.5 * x @ a @ x + jnp.sum(jnp.sin(x))
    x = jnp.linspace(-1, 1, 6)
    expected = a @ v - jnp.sin(x) * v
    np.testing.assert_allclose(optim.hvp_at(fn, x)(v), expected, rtol=1e-5)


def test_conjugate_gradient_solves_spd_system():
    a, b = _spd(), jnp.ones(6)
    x = optim.conjugate_gradient(lambda v: a @ v, b, iters=20)
    np.testing.assert_allclose(a @ x, b, rtol=1e-4, atol=1e-4)


def test_line_search_backtracks_until_kl_and_loss_are_satisfied():
    loss = lambda x: jnp.sum((x - 1.0) ** 2)
    kl = lambda x: jnp.sum(x**2)
    x0 = jnp.zeros(2)
    res = optim.backtracking_line_search(lambda x: (loss(x), kl(x)), x0, jnp.ones(2), loss(x0), max_kl=0.5, ratio=0.5)
    # candidates: step 1 (kl 2), 0.5 (kl 0.5, accepted)
    assert bool(res.accepted) and int(res.backtracks) == 1
    np.testing.assert_allclose(res.params, [0.5, 0.5])
    res = optim.backtracking_line_search(lambda x: (loss(x), kl(x)), x0, -jnp.ones(2), loss(x0), max_kl=0.5)
    assert not bool(res.accepted)  # an ascent direction is never accepted: params unchanged
    np.testing.assert_allclose(res.params, x0)


@pytest.mark.parametrize("max_backtracks", [1, 4, 15])
def test_line_search_tries_exactly_max_backtracks_candidates(max_backtracks):
    # as rllab: candidates ratio^0 .. ratio^(max_backtracks-1); a step that passes only at
    # ratio^max_backtracks is refused
    x0 = jnp.zeros(())
    passes_at = 0.8 ** max_backtracks * 1.01  # the loss falls only for steps this short or shorter
    loss = lambda x: jnp.where(x <= passes_at, -x, 1.0)
    steps = []

    def loss_and_kl(x):
        jax.debug.callback(lambda v: steps.append(float(v)), x)
        return loss(x), jnp.zeros(())

    res = jax.jit(lambda: optim.backtracking_line_search(loss_and_kl, x0, jnp.ones(()), loss(x0), 1.0,
                                                                  max_backtracks=max_backtracks))()
    jax.effects_barrier()
    np.testing.assert_allclose(steps, 0.8 ** np.arange(max_backtracks), rtol=1e-6)
    assert not bool(res.accepted) and float(res.params) == 0.0
    assert int(res.backtracks) == max_backtracks - 1


def test_trpo_step_on_quadratic_kl_is_natural_gradient_at_the_boundary():
    # loss linear g.x, KL = 0.5 x^T F (x - x0)... with F SPD: the TRPO step is -sqrt(2 d / g F^-1 g) F^-1 g
    f = _spd(4, seed=3)
    g = jnp.array([1.0, -2.0, 0.5, 0.3])
    params = {"w": jnp.zeros(4)}
    loss = lambda p: g @ p["w"]
    kl = lambda p: 0.5 * p["w"] @ f @ p["w"]
    new, info = optim.trpo_step(loss, kl, params, max_kl=0.01, cg_iters=20, cg_damping=0.0)
    nat = jnp.linalg.solve(f, g)
    expected = -jnp.sqrt(2 * 0.01 / (g @ nat)) * nat
    # the full step lands on the KL boundary; float rounding may cost one backtrack (x0.8)
    shrink = 0.8 ** int(info.backtracks)
    assert int(info.backtracks) <= 1
    np.testing.assert_allclose(new["w"], shrink * expected, rtol=1e-3, atol=1e-6)
    assert bool(info.accepted) and float(info.kl) <= 0.01


def test_gauss_newton_product_equals_the_divergence_hessian_at_its_minimum():
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
    outputs_fn = lambda x: {"mean": jnp.tanh(w @ x), "log_std": x[:2] * 0.5}
    x0 = jnp.linspace(-0.5, 0.7, 4)
    old = outputs_fn(x0)

    def divergence(out):  # KL(old || new) of diagonal Gaussians
        var_old, var_new = jnp.exp(2 * old["log_std"]), jnp.exp(2 * out["log_std"])
        return jnp.sum(out["log_std"] - old["log_std"] + (var_old + (old["mean"][:2] - out["mean"][:2]) ** 2)
                       / (2 * var_new) - 0.5) + jnp.sum((old["mean"][2:] - out["mean"][2:]) ** 2)

    v = jnp.array([0.3, -1.0, 0.5, 2.0])
    full = optim.hvp_at(lambda x: divergence(outputs_fn(x)), x0)(v)
    np.testing.assert_allclose(optim.gauss_newton_product_at(outputs_fn, divergence, x0)(v), full,
                               rtol=1e-4, atol=1e-6)


def test_trpo_step_with_the_loss_through_the_outputs_matches_the_plain_step():
    # the loss gradient taken through the shared linearisation of outputs_fn (J^T grad) must give
    # the same step as differentiating loss_fn directly, and the Gauss-Newton form the same as the
    # KL Hessian
    w = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4)), jnp.float32)
    x0 = jnp.asarray([0.2, -0.3, 0.1, 0.4], jnp.float32)
    outputs_fn = lambda p: jnp.tanh(w @ p["x"])
    old = outputs_fn({"x": x0})
    divergence = lambda out: 0.5 * jnp.sum((out - old) ** 2 * jnp.array([1.0, 2.0, 3.0]))
    loss_of_outputs = lambda out: jnp.sum(jnp.array([1.0, -0.5, 0.25]) * out) + jnp.sum(out**3)
    loss = lambda p: loss_of_outputs(outputs_fn(p))
    kl = lambda p: divergence(outputs_fn(p))
    params = {"x": x0}
    plain, plain_info = optim.trpo_step(loss, kl, params, max_kl=0.01, cg_iters=4)
    linearize = lambda p: optim.linearize_outputs(outputs_fn, p)
    shared, shared_info = optim.trpo_step(loss, kl, params, max_kl=0.01, cg_iters=4,
                                          kl_outputs=(linearize, divergence),
                                          loss_of_outputs=loss_of_outputs)
    np.testing.assert_allclose(shared["x"], plain["x"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(shared_info.loss_before, plain_info.loss_before, rtol=1e-6)
    assert bool(shared_info.accepted) and float(jnp.linalg.norm(shared["x"] - x0)) > 1e-3


def test_finite_difference_product_is_the_secant_of_the_gradient():
    # f = sum(x^4)/4: grad x^3, so the central difference over +-e v is 3 x^2 v + e^2 v^3 exactly,
    # with e = base_eps / |x|: the Hessian product plus a term that grows with the perturbation
    x = jnp.array([1.0, -2.0, 0.5])
    v = jnp.array([0.3, 1.0, -2.0])
    grad = lambda y: y**3
    for base_eps in (1e-2, 1.0):
        e = base_eps / float(jnp.linalg.norm(x))
        expected = 3 * x**2 * v + e**2 * v**3
        np.testing.assert_allclose(optim.finite_difference_product_at(grad, x, base_eps)(v), expected,
                                   rtol=1e-3, atol=1e-4)
    # exact for a quadratic whatever the perturbation
    a = _spd()
    x6, v6 = jnp.linspace(-1, 1, 6), jnp.arange(6.0)
    np.testing.assert_allclose(optim.finite_difference_product_at(lambda y: a @ y, x6, 1.0)(v6), a @ v6,
                               rtol=1e-4)


def test_trpo_step_with_finite_differences_matches_the_exact_step_on_a_quadratic_kl():
    f = _spd(4, seed=3)
    g = jnp.array([1.0, -2.0, 0.5, 0.3])
    params = {"w": jnp.full(4, 0.1)}
    loss = lambda p: g @ p["w"]
    kl = lambda p: 0.5 * (p["w"] - 0.1) @ f @ (p["w"] - 0.1)
    exact, info = optim.trpo_step(loss, kl, params, cg_iters=20, cg_damping=0.0)
    secant, info_fd = optim.trpo_step(loss, kl, params, cg_iters=20, cg_damping=0.0,
                                      finite_difference_eps=1.0)
    np.testing.assert_allclose(secant["w"], exact["w"], rtol=1e-3, atol=1e-6)
    assert int(info_fd.backtracks) == int(info.backtracks)
