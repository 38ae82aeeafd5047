"""The linear feature baseline of rllab/MAML, fitted per task in closed form by ridge regression.

Features per step: ``[clip(o, -10, 10), o^2, t/100, (t/100)^2, (t/100)^3, 1]`` with ``t`` the step
index within the episode; weights ``w = (F^T F + c I)^{-1} F^T G`` over the valid steps, with
``c = 1e-5`` raised x10 (up to 4 times, five values in all, as rllab) while the solution is not
finite; if none is finite the weights are zero (a zero baseline), where rllab keeps the NaNs.

The normal equations are solved by elimination in plain XLA ops (``solve_spd``), not LAPACK: on
CPU, jaxlib 0.10's batched LAPACK kernels (``jnp.linalg.solve``, Cholesky) share XLA's intra-op
thread pool, and two of them running at once in one program can deadlock it (seen on 2 cores).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

RIDGE = 1e-5
RIDGE_RETRIES = 5


def features(observations: jax.Array, time: jax.Array) -> jax.Array:
    """``[T, B, O], [T, B] -> [T, B, 2 O + 4]``."""
    obs = jnp.clip(observations, -10.0, 10.0)
    t = (time.astype(jnp.float32) / 100.0)[..., None]
    return jnp.concatenate([obs, obs**2, t, t**2, t**3, jnp.ones_like(t)], axis=-1)


def solve_spd(matrix: jax.Array, rhs: jax.Array) -> jax.Array:
    """``x`` with ``matrix @ x = rhs`` for symmetric positive definite ``matrix [..., F, F]``,
    ``rhs [..., F]``: Gauss-Jordan elimination (SPD pivots stay positive, so no pivoting), ``F``
    steps of a ``lax.fori_loop`` over the augmented matrix ``[..., F, F + 1]``."""
    size = matrix.shape[-1]
    augmented = jnp.concatenate([matrix, rhs[..., None]], axis=-1)

    def eliminate(j, aug):
        row = jax.lax.dynamic_index_in_dim(aug, j, axis=-2, keepdims=False)  # [..., F + 1]
        row = row / jax.lax.dynamic_index_in_dim(row, j, axis=-1, keepdims=True)
        column = jax.lax.dynamic_index_in_dim(aug, j, axis=-1, keepdims=False)  # [..., F]
        is_pivot = (jnp.arange(size) == j)[:, None]
        return jnp.where(is_pivot, row[..., None, :], aug - column[..., :, None] * row[..., None, :])

    return jax.lax.fori_loop(0, size, eliminate, augmented)[..., -1]


def fit(feats: jax.Array, targets: jax.Array, valid: jax.Array, ridge: float = RIDGE) -> jax.Array:
    """Ridge-regression weights ``[F]`` from ``feats [..., F]``, ``targets [...]`` over valid rows."""
    flat = feats.reshape(-1, feats.shape[-1]) * valid.reshape(-1, 1)
    gram = flat.T @ flat
    rhs = flat.T @ (targets.reshape(-1) * valid.reshape(-1))
    eye = jnp.eye(gram.shape[0], dtype=gram.dtype)
    ridges = ridge * 10.0 ** jnp.arange(RIDGE_RETRIES, dtype=gram.dtype)
    solutions = solve_spd(gram + ridges[:, None, None] * eye,
                          jnp.broadcast_to(rhs, (RIDGE_RETRIES,) + rhs.shape))
    finite = jnp.all(jnp.isfinite(solutions), axis=1)
    first = jnp.argmax(finite)
    return jnp.where(jnp.any(finite), solutions[first], jnp.zeros_like(rhs))


def fit_predict(observations, time, returns, valid) -> jax.Array:
    """Fit on one task's batch and return the baseline values ``[T, B]`` (0 where invalid)."""
    feats = features(observations, time)
    weights = fit(feats, returns, valid)
    return (feats @ weights) * valid
