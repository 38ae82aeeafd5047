"""Meta-gradient estimators: same first derivative; Monte Carlo averages against the exact
meta-gradient of a tiny MDP (DiCE unbiased up to the O(1/B) adaptation noise, LVC and MAML's
estimator biased by the terms they drop)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.meta_gradient_estimators import estimate, exact_meta_gradient
from metajax.estimators import ESTIMATORS, inner_objective


def _episode_data(key, T=4, B=3):
    k1, k2, k3 = jax.random.split(key, 3)
    params = jax.random.normal(k1, (2,))
    features = jax.random.normal(k2, (T, B, 2))
    adv = jax.random.normal(k3, (T, B))
    valid = jnp.ones((T, B)).at[2:, 0].set(0.0)
    log_probs = lambda w: jax.nn.log_sigmoid(features @ w)
    return params, log_probs, adv, valid


def test_all_estimators_share_the_policy_gradient_and_differ_in_curvature():
    w, log_probs, adv, valid = _episode_data(jax.random.key(0))
    sampled = log_probs(w)
    grads, hessians = {}, {}
    for name in ESTIMATORS:
        loss = lambda v: inner_objective(name, log_probs(v), sampled, adv, valid)
        grads[name], hessians[name] = jax.grad(loss)(w), jax.hessian(loss)(w)
    for name in ESTIMATORS:
        np.testing.assert_allclose(grads[name], grads["maml"], rtol=1e-5, atol=1e-6)
    # LVC adds the per-step outer products, DiCE also the cross-time terms
    score = jax.jacobian(log_probs)(w) * valid[..., None]  # [T, B, 2]
    per_step = -jnp.einsum("tb,tbi,tbj->ij", adv, score, score) / valid.sum()
    np.testing.assert_allclose(hessians["lvc"] - hessians["maml"], per_step, rtol=1e-4, atol=1e-6)
    past = jnp.cumsum(score, axis=0) - score
    cross = -jnp.einsum("tb,tbi,tbj->ij", adv, score, past) / valid.sum()
    np.testing.assert_allclose(hessians["dice"] - hessians["lvc"], cross + cross.T, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="estimator must be one of maml, lvc, dice"):
        inner_objective("reinforce", sampled, sampled, adv, valid)


@pytest.mark.slow
def test_monte_carlo_meta_gradients_against_the_exact_one():
    exact = np.asarray(exact_meta_gradient()).ravel()
    errors = {}
    for name in ESTIMATORS:
        samples = np.asarray(estimate(name, rollouts=200, tasks_per_batch=1000, batches=20))
        mean = samples.reshape(20, -1).mean(0)
        errors[name] = np.linalg.norm(mean - exact) / np.linalg.norm(exact)
    # measured: dice 0.009 (Monte Carlo s.e. 0.002; the rest is the O(1/B) bias of sampling the
    # inner step), lvc 0.20, maml 1.13 (its meta-gradient is nearly orthogonal to the exact one)
    assert errors["dice"] < 0.03, errors
    assert errors["lvc"] > 0.1 and errors["maml"] > 0.5, errors
