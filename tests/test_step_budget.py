"""rllab's step-budget batch: the mask, and MAML's post-update batch drawn that way in training."""
import jax
import jax.numpy as jnp
import numpy as np

import metajax
from metajax.learners.inner_loop import InnerLoopConfig, make_inner_loop

from metajax.rollout import StepBudgetSampler, step_budget_mask


def _valid(lengths, horizon=20):
    """``valid [T, B]`` of episodes with the given lengths (column ``k * num_envs + e``)."""
    return (jnp.arange(horizon)[:, None] < jnp.asarray(lengths)[None, :]).astype(jnp.float32)


def test_step_budget_keeps_the_episodes_finished_when_the_budget_is_reached():
    # env 0 runs episodes of 2 steps (finishing at t = 2, 4, 6), env 1 of 5 (t = 5, 10, 15)
    valid = _valid([2, 5, 2, 5, 2, 5])
    sampler = StepBudgetSampler(num_envs=2, min_steps=9, episodes_per_env=3)
    kept, enough = step_budget_mask(valid, sampler)  # 2 + 2 + 5 = 9 steps by t = 5
    np.testing.assert_array_equal(kept, [1, 1, 1, 0, 0, 0])
    assert bool(enough)
    kept, _ = step_budget_mask(valid, sampler._replace(min_steps=10))  # one more: t = 6
    np.testing.assert_array_equal(kept, [1, 1, 1, 0, 1, 0])


def test_step_budget_with_too_few_episodes_keeps_them_all():
    kept, enough = step_budget_mask(_valid([2, 5, 2, 5]), StepBudgetSampler(2, 100, 2))
    np.testing.assert_array_equal(kept, [1, 1, 1, 1])
    assert not bool(enough)


def test_full_length_episodes_give_one_episode_per_env():
    sampler = StepBudgetSampler(num_envs=40, min_steps=4000, episodes_per_env=3)
    kept, _ = step_budget_mask(_valid([100] * 120, horizon=100), sampler)
    np.testing.assert_array_equal(kept, [1] * 40 + [0] * 80)


def test_training_post_batch_is_a_step_budget_over_the_meta_batch():
    """With ``post_episode_pool`` each task's kept post-update episodes are a prefix of its pool,
    and together they just reach ``B x H x M`` steps (rllab's pooled budget, one env per task)."""
    env, tasks = metajax.make("point-nav-v1")
    cfg = InnerLoopConfig(meta_batch_size=3, rollouts_per_task=2, post_episode_pool=6, hidden_sizes=(8,))
    loop = make_inner_loop(env, tasks, cfg)
    params = loop.policy.init(jax.random.key(0), jnp.zeros((1, env.observation_size)))
    data = jax.jit(loop.collect)(params, jax.random.key(1))
    kept = np.asarray(data.post.valid[:, 0, :])  # [M, P]
    assert data.post.valid.shape == (3, env.horizon, 6)
    assert np.all(np.diff(kept, axis=1) <= 0)  # prefixes: nothing kept after a dropped episode
    steps = float(jnp.sum(data.post.valid))
    assert steps >= 2 * env.horizon * 3
    lengths = np.asarray(jnp.sum(data.post.valid, axis=1))  # [M, P]; 0 for dropped episodes
    finished_at = np.where(kept > 0, np.cumsum(lengths, axis=1), np.inf)
    stop = finished_at[kept > 0].max()
    assert lengths[finished_at < stop].sum() < 2 * env.horizon * 3  # the earliest stop that fills it
    # advantages are computed on the kept episodes only
    assert float(jnp.sum(jnp.abs(data.post_advantages) * (1 - data.post.valid))) == 0.0
