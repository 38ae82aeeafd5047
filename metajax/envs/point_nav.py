"""``point-nav-v1``: MAML's 2-D point navigation (Finn et al., ICML 2017, Sec. 5.3).

Definition (pinned by tests/test_envs.py):
  task: goal g ~ U[-0.5, 0.5]^2.   start: s = (0, 0).   horizon H = 100.
  action a in policy units [-1, 1]^2 (rllab's normaliser maps them onto the +-0.1 box):
      s' = s + clip(0.1 * a, -0.1, 0.1)
  reward r = -||s' - g||_2;  terminated when |s' - g| < 0.01 in both coordinates;  obs = s.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep


class GoalTask(NamedTuple):
    goal: jax.Array  # [2]


class PointState(NamedTuple):
    position: jax.Array  # [2]
    time: jax.Array  # [] int32, steps taken in this episode


@dataclasses.dataclass(frozen=True)
class PointNav:
    """Pure 2-D navigation env; the goal lives in the task, never in the env."""

    horizon: int = 100
    action_scale: float = 0.1
    max_move: float = 0.1
    goal_tolerance: float = 0.01
    observation_size: int = 2
    action_size: int = 2

    def reset(self, key, task: GoalTask):
        return reset_at_origin(key, task)

    def step(self, key, state: PointState, action, task: GoalTask):
        del key
        move = jnp.clip(self.action_scale * action, -self.max_move, self.max_move)
        position = state.position + move
        offset = position - task.goal
        reward = -jnp.linalg.norm(offset)
        terminated = jnp.all(jnp.abs(offset) < self.goal_tolerance)
        time = state.time + 1
        truncated = (time >= self.horizon) & ~terminated
        return PointState(position, time), TimeStep(position, reward, terminated, truncated)

    def oracle_action(self, observation, task: GoalTask):
        """The goal-seeking controller: straight at the goal at full speed (used as the oracle row)."""
        return jnp.clip((task.goal - observation) / self.action_scale, -1.0, 1.0)


def reset_at_origin(key, task):
    """Reset shared by the point envs: position (0, 0), time 0, the key and task unused."""
    del key, task
    state = PointState(jnp.zeros(2, jnp.float32), jnp.zeros((), jnp.int32))
    false = jnp.zeros((), bool)
    return state, TimeStep(state.position, jnp.zeros((), jnp.float32), false, false)


def sample_goal(key) -> GoalTask:
    return GoalTask(jax.random.uniform(key, (2,), minval=-0.5, maxval=0.5))


def make_point_nav():
    return PointNav(), TaskFamily("point-nav-v1", sample_goal)
