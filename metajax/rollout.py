"""Fixed-length rollouts with ``lax.scan`` over time, vmapped over envs (and, by callers, tasks).

An act function ``act(key, obs [B, O]) -> (action [B, A], log_prob [B])`` drives the envs; each
buffer column is one episode started from ``reset``; steps after the episode ended are kept in the
buffer but marked ``valid = 0``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from metajax.types import Transition


def policy_act(policy_apply: Callable, params) -> Callable:
    """An act function that samples from ``policy_apply(params, obs)``."""

    def act(key, obs):
        dist, _ = policy_apply(params, obs)
        return dist.sample_and_log_prob(seed=key)

    return act


def rollout(env, act: Callable, task, key, num_envs: int, num_steps: int | None = None) -> Transition:
    """Roll out ``num_envs`` episodes of one task for ``num_steps`` (default: the env's horizon).

    Returns:
      Transition with leaves ``[T, B, ...]``; ``valid`` is 1 up to and including the last step of
      each episode, 0 afterwards.
    """
    num_steps = env.horizon if num_steps is None else num_steps
    reset_key, scan_key = jax.random.split(key)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    state, timestep = reset(jax.random.split(reset_key, num_envs), task)

    def body(carry, step_key):
        state, obs, alive, time = carry
        act_key, env_key = jax.random.split(step_key)
        action, log_prob = act(act_key, obs)
        next_state, ts = step(jax.random.split(env_key, num_envs), state, action, task)
        transition = Transition(
            observation=obs,
            action=action,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            valid=alive.astype(jnp.float32),
            time=time,
            log_prob=log_prob,
        )
        alive = alive & ~(ts.terminated | ts.truncated)
        return (next_state, ts.observation, alive, time + 1), transition

    alive = jnp.ones((num_envs,), bool)
    time = jnp.zeros((num_envs,), jnp.int32)
    carry = (state, timestep.observation, alive, time)
    _, transitions = jax.lax.scan(body, carry, jax.random.split(scan_key, num_steps))
    return transitions


def episode_returns(batch: Transition) -> jax.Array:
    """Undiscounted return of each episode column: ``[T, B] -> [B]``."""
    return jnp.sum(batch.reward * batch.valid, axis=0)


def mean_episode_return(batch: Transition) -> jax.Array:
    """Mean return over the kept episodes of a batch (all of them unless a step budget dropped
    some): valid reward over valid first steps (``time == 0``), so it holds for ``[T, B]`` episode
    columns and for the packed ``[N, 1]`` batches of ``compact_steps`` alike."""
    starts = jnp.sum(batch.valid * (batch.time == 0))
    return jnp.sum(batch.reward * batch.valid) / jnp.maximum(starts, 1.0)


def episode_returns_in_trial(reward: jax.Array, done: jax.Array, num_episodes: int) -> jax.Array:
    """Return of each of the first ``num_episodes`` episodes of a trial: ``[T], [T] -> [n]``."""
    episode = jnp.cumsum(done) - done  # index of the episode each step belongs to
    index = jnp.clip(episode, 0, num_episodes).astype(jnp.int32)
    return jax.ops.segment_sum(reward, index, num_segments=num_episodes + 1)[:num_episodes]


class StepBudgetSampler(NamedTuple):
    """rllab's batch: ``num_envs`` lockstep envs until finished episodes hold ``min_steps`` steps;
    ``episodes_per_env`` bounds the episodes drawn per env (enough unless episodes are very short)."""

    num_envs: int = 40
    min_steps: int = 4000
    episodes_per_env: int = 16


def step_budget_mask(valid: jax.Array, sampler: StepBudgetSampler) -> tuple[jax.Array, jax.Array]:
    """Which episodes (columns of ``valid [T, num_envs * episodes_per_env]``, env-major within each
    round: column ``k * num_envs + e`` is env ``e``'s ``k``-th episode) the sampler keeps, as
    ``[B]`` floats, and whether the drawn episodes reached ``min_steps`` at all."""
    lengths = jnp.sum(valid, axis=0).reshape(sampler.episodes_per_env, sampler.num_envs)
    finished_at = jnp.cumsum(lengths, axis=0).ravel()  # the lockstep time each episode ends
    order = jnp.argsort(finished_at)
    steps_done = jnp.cumsum(lengths.ravel()[order])
    enough = steps_done[-1] >= sampler.min_steps
    stop = jnp.where(enough, finished_at[order][jnp.argmax(steps_done >= sampler.min_steps)],
                     finished_at[order][-1])  # too few drawn: keep them all
    return (finished_at <= stop).astype(jnp.float32), enough


def batch_sampler_mask(valid: jax.Array, min_steps: int, workers: int) -> tuple[jax.Array, jax.Array]:
    """Which episodes of one task rllab's parallel batch sampler keeps: ``workers`` processes run
    whole episodes back to back (column ``k * workers + w`` of ``valid [T, P]`` is worker ``w``'s
    ``k``-th) and add each finished one to a shared step counter; a worker starts another episode
    only while the counter is below ``min_steps``, and always finishes the one it started.

    Returns the kept episodes ``[P]`` as floats and whether the pool was deep enough (no worker
    would have gone on past its last pool episode). Workers step in lockstep; episodes that end at
    the same time all count before any worker's next start.
    """
    lengths = jnp.sum(valid, axis=0).reshape(-1, workers)  # [K, W]
    finish = jnp.cumsum(lengths, axis=0)
    start = finish - lengths
    done_before = finish[None, None] <= start[:, :, None, None]  # [K, W, K, W]
    counter_at_start = jnp.sum(lengths[None, None] * done_before, axis=(2, 3))
    kept = counter_at_start < min_steps
    return kept.ravel().astype(jnp.float32), ~jnp.any(kept[-1])


def compact_steps(tree, mask: jax.Array, size: int):
    """Pack the steps where ``mask [T, P]`` is 1 from every ``[T, P, ...]`` leaf of ``tree`` into
    ``[size, 1, ...]`` (time order lost), and the ``[size, 1]`` mask of the filled slots. Steps
    past ``size`` are dropped, so ``size`` must bound the mask's count (for ``batch_sampler_mask``:
    ``min_steps - 1 + workers * T``)."""
    flat = mask.ravel()
    index = jnp.nonzero(flat, size=size, fill_value=0)[0]
    filled = (jnp.arange(size) < jnp.sum(flat)).astype(jnp.float32)[:, None]
    packed = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[index][:, None], tree)
    return packed, filled
