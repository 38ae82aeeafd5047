"""Policies return distrax distributions of the right shapes; rollouts mask after episode end."""
import jax
import jax.numpy as jnp
import numpy as np

import metajax
from metajax.envs.point_nav import GoalTask
from metajax.networks import CategoricalMLPPolicy, GaussianMLPPolicy
from metajax.rollout import episode_returns, rollout


def test_gaussian_policy_state_independent_log_std_and_value_head():
    policy = GaussianMLPPolicy(3, (16, 16), init_log_std=-0.5, value_head=True)
    params = policy.init(jax.random.key(0), jnp.zeros((1, 4)))
    obs = jax.random.normal(jax.random.key(1), (5, 7, 4))
    dist, value = policy.apply(params, obs)
    assert dist.event_shape == (3,) and dist.batch_shape == (5, 7) and value.shape == (5, 7)
    np.testing.assert_allclose(dist.stddev(), np.exp(-0.5), rtol=1e-6)  # same std for every state
    sample = dist.sample(seed=jax.random.key(2))
    # log-likelihood sums over action dimensions
    per_dim = -0.5 * ((sample - dist.mean()) / np.exp(-0.5)) ** 2 - (-0.5) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(dist.log_prob(sample), per_dim.sum(-1), rtol=1e-5)
    _, no_value = GaussianMLPPolicy(3, (16,)).apply(GaussianMLPPolicy(3, (16,)).init(jax.random.key(0), obs), obs)
    assert no_value is None


def test_categorical_policy():
    policy = CategoricalMLPPolicy(4, (8,))
    params = policy.init(jax.random.key(0), jnp.zeros((1, 2)))
    dist, _ = policy.apply(params, jnp.zeros((6, 2)))
    assert dist.batch_shape == (6,)
    np.testing.assert_allclose(dist.probs.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(dist.probs, 0.25, atol=0.05)  # small output init: near uniform


def test_rollout_masks_after_termination_and_counts_time():
    env, _ = metajax.make("point-nav-v1")
    task = GoalTask(jnp.array([0.25, 0.0]))
    # a controller that reaches the goal in 3 steps (0.1, 0.1, 0.05) and terminates
    act = lambda key, obs: (jnp.clip((task.goal - obs) / 0.1, -1, 1), jnp.zeros(obs.shape[0]))
    batch = rollout(env, act, task, jax.random.key(0), num_envs=2)
    assert batch.observation.shape == (100, 2, 2) and batch.valid.shape == (100, 2)
    np.testing.assert_array_equal(batch.valid[:, 0], [1, 1, 1] + [0] * 97)
    np.testing.assert_array_equal(batch.time[:4, 0], [0, 1, 2, 3])
    assert bool(batch.terminated[2, 0])
    np.testing.assert_allclose(episode_returns(batch), [-(0.15 + 0.05 + 0.0)] * 2, atol=1e-6)
