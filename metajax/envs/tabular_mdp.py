"""``tabular-mdp-v1``: random finite MDPs (Duan et al., "RL^2", 2016, Sec. 4.2), plus exact solvers.

Definition (pinned by tests/test_envs.py):
  task: mean rewards mu(s, a) ~ N(1, 1); transitions P(.|s, a) ~ Dirichlet(1, ..., 1);
        10 states, 5 actions.   start state 0.   horizon H = 10 steps per episode.
  reward r ~ N(mu(s, a), 1);  obs = one-hot state;  no termination (truncated at H).
The action is an integer in [0, num_actions). ``expected_return`` evaluates a stationary policy
exactly and ``optimal_return`` solves the finite-horizon MDP by value iteration.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep


class MDPTask(NamedTuple):
    reward_mean: jax.Array  # [S, A]
    transitions: jax.Array  # [S, A, S], rows sum to 1


class MDPState(NamedTuple):
    state: jax.Array  # [] int32
    time: jax.Array  # [] int32


@dataclasses.dataclass(frozen=True)
class TabularMDP:
    """A finite MDP whose rewards and transitions are the task; one-hot observations."""

    num_states: int = 10
    num_actions: int = 5
    horizon: int = 10
    reward_noise: float = 1.0
    action_size: int = 1  # one integer action

    @property
    def observation_size(self) -> int:
        return self.num_states

    def reset(self, key, task: MDPTask):
        del key, task
        state = MDPState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        false = jnp.zeros((), bool)
        return state, TimeStep(self._observe(state.state), jnp.zeros(()), false, false)

    def step(self, key, state: MDPState, action, task: MDPTask):
        noise_key, next_key = jax.random.split(key)
        mean = task.reward_mean[state.state, action]
        reward = mean + self.reward_noise * jax.random.normal(noise_key)
        next_state = jax.random.categorical(next_key, jnp.log(task.transitions[state.state, action]))
        time = state.time + 1
        ts = TimeStep(self._observe(next_state), reward, jnp.zeros((), bool), time >= self.horizon)
        return MDPState(next_state.astype(jnp.int32), time), ts

    def _observe(self, state):
        return jax.nn.one_hot(state, self.num_states)


def expected_return(policy_probs: jax.Array, task: MDPTask, horizon: int, start: int = 0) -> jax.Array:
    """Exact expected undiscounted return of a stationary policy ``pi(a|s) [S, A]`` over ``horizon``."""
    occupancy = jax.nn.one_hot(start, policy_probs.shape[0])
    total = jnp.zeros(())
    for _ in range(horizon):
        state_action = occupancy[:, None] * policy_probs
        total = total + jnp.sum(state_action * task.reward_mean)
        occupancy = jnp.einsum("sa,sap->p", state_action, task.transitions)
    return total


def optimal_values(task: MDPTask, horizon: int) -> jax.Array:
    """Finite-horizon value iteration: the best expected return from each state ``[S]``."""
    def backup(values, _):
        return jnp.max(task.reward_mean + task.transitions @ values, axis=1), None

    values, _ = jax.lax.scan(backup, jnp.zeros(task.reward_mean.shape[0]), None, length=horizon)
    return values


def optimal_return(task: MDPTask, horizon: int, start: int = 0) -> jax.Array:
    """Best expected return over ``horizon`` steps from state ``start``, by value iteration."""
    return optimal_values(task, horizon)[start]


def sample_mdp(key, num_states: int = 10, num_actions: int = 5) -> MDPTask:
    reward_key, transition_key = jax.random.split(key)
    mean = 1.0 + jax.random.normal(reward_key, (num_states, num_actions))
    transitions = jax.random.dirichlet(transition_key, jnp.ones(num_states), (num_states, num_actions))
    return MDPTask(mean, transitions)


def make_tabular_mdp():
    return TabularMDP(), TaskFamily("tabular-mdp-v1", sample_mdp)
