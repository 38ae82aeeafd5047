"""Returns, GAE and surrogate losses against hand-computed values and naive loops."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np

from metajax import losses


def _naive_gae(rewards, values, valid, gamma, lam):
    T, B = rewards.shape
    adv = np.zeros((T, B))
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            if not valid[t, b]:
                running = 0.0
                continue
            next_v = values[t + 1, b] if t + 1 < T and valid[t + 1, b] else 0.0
            cont = 1.0 if t + 1 < T and valid[t + 1, b] else 0.0
            delta = rewards[t, b] + gamma * next_v - values[t, b]
            running = delta + gamma * lam * cont * running
            adv[t, b] = running
    return adv


def _data(seed=0, T=7, B=3):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B)).astype(np.float32)
    values = rng.normal(size=(T, B)).astype(np.float32)
    lengths = [T, 4, 1]
    valid = np.stack([(np.arange(T) < L) for L in lengths], axis=1).astype(np.float32)
    return rewards, values, valid


def test_discounted_returns_by_hand():
    rewards = jnp.array([[1.0], [2.0], [3.0], [9.0]])
    valid = jnp.array([[1.0], [1.0], [1.0], [0.0]])
    returns = losses.discounted_returns(rewards, valid, 0.5)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 0])


def test_gae_matches_loop_and_lambda_one_is_return_minus_value():
    rewards, values, valid = _data()
    for lam in (0.0, 0.95, 1.0):
        got = losses.gae_advantages(rewards, values * valid, valid, 0.9, lam)
        np.testing.assert_allclose(got, _naive_gae(rewards, values * valid, valid, 0.9, lam), rtol=1e-5, atol=1e-5)
    returns = losses.discounted_returns(rewards, valid, 0.9)
    got = losses.gae_advantages(rewards, values * valid, valid, 0.9, 1.0)
    np.testing.assert_allclose(got, (returns - values) * valid, rtol=1e-5, atol=1e-5)


def test_normalize_uses_valid_entries_only():
    x = jnp.array([[1.0, 100.0], [3.0, -50.0]])
    valid = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(losses.normalize(x, valid), [[-1.0, 0.0], [1.0, 0.0]], atol=1e-6)


def test_reinforce_and_importance_surrogate_gradients_agree_at_old_policy():
    rng = np.random.default_rng(1)
    obs = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    actions = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    adv = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    valid = jnp.ones((5, 4))

    def logp(w):
        return distrax.Normal(w * obs, 1.0).log_prob(actions)

    w = jnp.float32(0.3)
    g_reinforce = jax.grad(lambda w: losses.reinforce_loss(logp(w), adv, valid))(w)
    g_surrogate = jax.grad(lambda w: losses.importance_surrogate(logp(w), logp(w), adv, valid))(w)
    np.testing.assert_allclose(g_reinforce, g_surrogate, rtol=1e-5)
    # closed form: d/dw -mean(A * (-(a - w o)^2 / 2)) = -mean(A (a - w o) o)
    np.testing.assert_allclose(g_reinforce, -jnp.mean(adv * (actions - w * obs) * obs), rtol=1e-5)


def test_ppo_clip_by_hand():
    logp = jnp.log(jnp.array([1.5, 0.5, 1.1]))
    old = jnp.zeros(3)
    adv = jnp.array([1.0, -1.0, 2.0])
    # min(rho A, clip(rho) A): 1.2, -0.8, 2.2
    np.testing.assert_allclose(losses.ppo_clip_loss(logp, old, adv, jnp.ones(3), 0.2), -(1.2 - 0.8 + 2.2) / 3, rtol=1e-6)


def test_mean_kl_gaussians_closed_form():
    old = distrax.MultivariateNormalDiag(jnp.zeros((2, 1)), jnp.ones((2, 1)))
    new = distrax.MultivariateNormalDiag(jnp.ones((2, 1)), 2 * jnp.ones((2, 1)))
    expected = np.log(2.0) + (1 + 1) / (2 * 4) - 0.5
    np.testing.assert_allclose(losses.mean_kl(old, new, jnp.ones(2)), expected, rtol=1e-5)


def test_value_loss():
    np.testing.assert_allclose(losses.value_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0]), jnp.ones(2)), 1.25)
