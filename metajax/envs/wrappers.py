"""Env wrappers: auto-reset that keeps the task, and episode statistics."""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class _Wrapper:
    """Forwards unknown attributes (``horizon``, ``observation_size``...) to the wrapped ``env``."""

    def __getattr__(self, name):
        if name == "env" or name.startswith("__"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)


@dataclasses.dataclass(frozen=True)
class AutoReset(_Wrapper):
    """On ``terminated | truncated``, resets with the SAME task.

    The returned timestep keeps the final reward and done flags but carries the first observation
    of the next episode; ``step_with_final_observation`` also returns the observation the episode
    ended in (to bootstrap a value at a time-limit truncation).
    """

    env: Any

    def reset(self, key, task):
        return self.env.reset(key, task)

    def step(self, key, state, action, task):
        state, timestep, _ = self.step_with_final_observation(key, state, action, task)
        return state, timestep

    def step_with_final_observation(self, key, state, action, task):
        """``(state, timestep, final_observation)``: the step's own observation before any reset."""
        step_key, reset_key = jax.random.split(key)
        state, timestep = self.env.step(step_key, state, action, task)
        reset_state, reset_timestep = self.env.reset(reset_key, task)
        done = timestep.terminated | timestep.truncated
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
        observation = jnp.where(done, reset_timestep.observation, timestep.observation)
        return state, timestep._replace(observation=observation), timestep.observation


class EpisodeStatsState(NamedTuple):
    env_state: Any
    episode_return: jax.Array  # running return of the current episode
    episode_length: jax.Array
    last_return: jax.Array  # return of the most recently completed episode
    last_length: jax.Array
    episodes: jax.Array  # completed episodes so far


@dataclasses.dataclass(frozen=True)
class EpisodeStats(_Wrapper):
    """Tracks the running and last completed episode's return and length in the state."""

    env: Any

    def reset(self, key, task):
        env_state, timestep = self.env.reset(key, task)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return EpisodeStatsState(env_state, zero_f, zero_i, zero_f, zero_i, zero_i), timestep

    def step(self, key, state: EpisodeStatsState, action, task):
        env_state, timestep = self.env.step(key, state.env_state, action, task)
        return _record(state, env_state, timestep), timestep

    def step_with_final_observation(self, key, state: EpisodeStatsState, action, task):
        """As ``AutoReset.step_with_final_observation``, for an ``EpisodeStats(AutoReset(env))``."""
        env_state, timestep, final = self.env.step_with_final_observation(key, state.env_state, action, task)
        return _record(state, env_state, timestep), timestep, final


def _record(state: EpisodeStatsState, env_state, timestep) -> EpisodeStatsState:
    episode_return = state.episode_return + timestep.reward
    episode_length = state.episode_length + 1
    done = timestep.terminated | timestep.truncated
    return EpisodeStatsState(
        env_state,
        jnp.where(done, 0.0, episode_return),
        jnp.where(done, 0, episode_length),
        jnp.where(done, episode_return, state.last_return),
        jnp.where(done, episode_length, state.last_length),
        state.episodes + done.astype(jnp.int32),
    )
