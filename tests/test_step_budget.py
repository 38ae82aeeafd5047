"""rllab's step-budget batches (its vectorised and its parallel batch sampler): the masks, and
MAML's post-update batch drawn those ways in training."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.learners.inner_loop import InnerLoopConfig, make_inner_loop
from metajax.losses import masked_mean
from metajax.rollout import (
    StepBudgetSampler, batch_sampler_mask, compact_steps, mean_episode_return, rollout, step_budget_mask,
)


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


def test_batch_sampler_workers_stop_starting_episodes_once_the_counter_reaches_the_budget():
    # worker 0 runs episodes of 2 steps (ending at t = 2, 4, 6, 8), worker 1 of 5 (t = 5, 10, ...)
    valid = _valid([2, 5] * 4)
    kept, enough = batch_sampler_mask(valid, min_steps=9, workers=2)
    # by t = 4 the counter holds 4 steps (w0 starts a third); at t = 5 it reaches 9, so w1 stops,
    # and w0 stops at t = 6: kept 2 + 2 + 2 (w0) and 5 (w1) = 11 steps, over the budget of 9
    np.testing.assert_array_equal(kept, [1, 1, 1, 0, 1, 0, 0, 0])
    assert bool(enough)
    kept, enough = batch_sampler_mask(valid, min_steps=100, workers=2)  # the pool runs out
    np.testing.assert_array_equal(kept, [1] * 8)
    assert not bool(enough)


def test_batch_sampler_with_full_length_episodes_keeps_exactly_the_budget():
    kept, _ = batch_sampler_mask(_valid([100] * 96, horizon=100), min_steps=2000, workers=4)
    np.testing.assert_array_equal(kept, [1] * 20 + [0] * 76)  # 5 rounds of 4 workers


def test_compacted_steps_keep_every_masked_mean():
    key_x, key_m = jax.random.split(jax.random.key(0))
    x = jax.random.normal(key_x, (7, 5, 3))
    mask = (jax.random.uniform(key_m, (7, 5)) < 0.4).astype(jnp.float32)
    count = int(jnp.sum(mask))
    packed, filled = compact_steps(x, mask, size=count + 4)
    assert packed.shape == (count + 4, 1, 3) and filled.shape == (count + 4, 1)
    np.testing.assert_array_equal(filled[:, 0], [1] * count + [0] * 4)
    np.testing.assert_allclose(masked_mean(packed, filled[..., None]), masked_mean(x, mask[..., None]), rtol=1e-6)
    np.testing.assert_allclose(packed[:count, 0], np.asarray(x)[np.asarray(mask) > 0], rtol=0)


def test_mean_episode_return_is_the_same_on_columns_and_on_packed_steps():
    env, tasks = metajax.make("point-nav-v1")
    policy = lambda key, obs: (jnp.clip(-obs * 10, -1, 1) + 0.3 * jax.random.normal(key, obs.shape), jnp.zeros(obs.shape[0]))
    batch = rollout(env, policy, tasks.sample(jax.random.key(0)), jax.random.key(1), 6)
    kept = jnp.asarray([1, 0, 1, 1, 0, 1], jnp.float32)
    batch = batch._replace(valid=batch.valid * kept)
    packed, filled = compact_steps(batch, batch.valid, size=600)
    expected = float(jnp.sum(batch.reward * batch.valid) / 4)
    np.testing.assert_allclose(mean_episode_return(batch), expected, rtol=1e-6)
    np.testing.assert_allclose(mean_episode_return(packed._replace(valid=filled)), expected, rtol=1e-6)


def test_training_post_batch_from_the_parallel_batch_sampler():
    """With ``post_sampler_workers`` each task's post-update batch holds the kept episodes' steps,
    at least ``B x H`` and under ``B x H + W x H``, packed with their advantages."""
    env, tasks = metajax.make("point-nav-v1")
    cfg = InnerLoopConfig(meta_batch_size=3, rollouts_per_task=2, post_episode_pool=8,
                          post_sampler_workers=2, hidden_sizes=(8,))
    loop = make_inner_loop(env, tasks, cfg)
    params = loop.policy.init(jax.random.key(0), jnp.zeros((1, env.observation_size)))
    data = jax.jit(loop.collect)(params, jax.random.key(1))
    budget, size = 2 * env.horizon, 2 * env.horizon + 2 * env.horizon
    assert data.post.valid.shape == (3, size, 1) and data.post_advantages.shape == (3, size, 1)
    steps = np.asarray(jnp.sum(data.post.valid, axis=(1, 2)))
    assert np.all(steps >= budget) and np.all(steps < size)
    episodes = np.asarray(jnp.sum(data.post.valid * (data.post.time == 0), axis=(1, 2)))
    assert np.all(episodes >= 2)
    assert float(jnp.sum(jnp.abs(data.post_advantages) * (1 - data.post.valid))) == 0.0
    np.testing.assert_array_equal(data.post_pool_short, [0, 0, 0])  # 4 episodes per worker cover a 200-step budget
    # advantages are normalised over each task's kept steps
    np.testing.assert_allclose(jax.vmap(masked_mean)(data.post_advantages, data.post.valid), 0, atol=1e-5)


def test_batch_sampler_options_are_validated():
    with pytest.raises(ValueError, match="post_sampler_workers=4 needs a pool"):
        InnerLoopConfig(post_sampler_workers=4)
    with pytest.raises(ValueError, match="post_episode_pool must be a multiple of post_sampler_workers=4"):
        InnerLoopConfig(post_sampler_workers=4, post_episode_pool=30)


def test_maml_meta_step_on_batch_sampler_data_with_task_chunked_fisher():
    from metajax.learners.maml import MAMLConfig, make_maml
    env, tasks = metajax.make("point-nav-v1")
    cfg = MAMLConfig(meta_batch_size=2, rollouts_per_task=2, post_episode_pool=4, post_sampler_workers=2,
                     hidden_sizes=(8,), cg_iters=2, fisher_task_chunks=2)
    learner = make_maml(env, tasks, cfg)
    state, metrics = jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1))
    assert int(state.step) == 1 and float(metrics["post_pool_short"]) in (0.0, 0.5, 1.0)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["kl"]) <= cfg.max_kl * 1.5
