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
    """Mean return over the episodes of ``[T, B]`` that were kept (``valid`` at their first step);
    all of them unless a step budget (``step_budget_mask``) dropped some."""
    kept = batch.valid[0]
    return jnp.sum(episode_returns(batch) * kept) / jnp.maximum(jnp.sum(kept), 1.0)


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
