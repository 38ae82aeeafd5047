"""The linear feature baseline of rllab/MAML, fitted per task in closed form by ridge regression.

Features per step: ``[clip(o, -10, 10), o^2, t/100, (t/100)^2, (t/100)^3, 1]`` with ``t`` the step
index within the episode; weights ``w = (F^T F + c I)^{-1} F^T G`` over the valid steps, with
``c = 1e-5`` raised x10 (up to 5 times) while the solution is not finite.
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


def fit(feats: jax.Array, targets: jax.Array, valid: jax.Array, ridge: float = RIDGE) -> jax.Array:
    """Ridge-regression weights ``[F]`` from ``feats [..., F]``, ``targets [...]`` over valid rows."""
    flat = feats.reshape(-1, feats.shape[-1]) * valid.reshape(-1, 1)
    gram = flat.T @ flat
    rhs = flat.T @ (targets.reshape(-1) * valid.reshape(-1))
    eye = jnp.eye(gram.shape[0], dtype=gram.dtype)
    solutions = jnp.stack(
        [jnp.linalg.solve(gram + ridge * 10.0**k * eye, rhs) for k in range(RIDGE_RETRIES)]
    )
    finite = jnp.all(jnp.isfinite(solutions), axis=1)
    first = jnp.argmax(finite)
    return jnp.where(jnp.any(finite), solutions[first], jnp.zeros_like(rhs))


def fit_predict(observations, time, returns, valid) -> jax.Array:
    """Fit on one task's batch and return the baseline values ``[T, B]`` (0 where invalid)."""
    feats = features(observations, time)
    weights = fit(feats, returns, valid)
    return (feats @ weights) * valid
