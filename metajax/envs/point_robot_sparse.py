"""``point-robot-sparse-v1``: PEARL's sparse point robot (Rakelly et al., ICML 2019).

Definition (pinned by tests/test_envs.py):
  task: goal g = (cos a, sin a), a ~ U[0, pi] (the unit half-circle).  start s = (0, 0).  H = 20.
  action clipped to [-0.1, 0.1]^2;  s' = s + a.
  dense reward  -||s' - g||;  sparse reward (the one returned) 1 - ||s' - g|| inside radius 0.2,
  else 0.  No termination.  obs = s.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from metajax.envs.point_nav import GoalTask, PointState, reset_at_origin
from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep


@dataclasses.dataclass(frozen=True)
class PointRobotSparse:
    """Point robot with a goal on the unit half-circle; ``dense=True`` returns the dense reward."""

    horizon: int = 20
    max_move: float = 0.1
    goal_radius: float = 0.2
    dense: bool = False
    observation_size: int = 2
    action_size: int = 2

    def reset(self, key, task: GoalTask):
        return reset_at_origin(key, task)

    def step(self, key, state: PointState, action, task: GoalTask):
        del key
        position = state.position + jnp.clip(action, -self.max_move, self.max_move)
        distance = jnp.linalg.norm(position - task.goal)
        sparse = jnp.where(distance <= self.goal_radius, 1.0 - distance, 0.0)
        reward = -distance if self.dense else sparse
        time = state.time + 1
        terminated = jnp.zeros((), bool)
        return PointState(position, time), TimeStep(position, reward, terminated, time >= self.horizon)

    def oracle_action(self, observation, task: GoalTask):
        return jnp.clip(task.goal - observation, -self.max_move, self.max_move)


def sample_half_circle_goal(key) -> GoalTask:
    angle = jax.random.uniform(key, (), minval=0.0, maxval=jnp.pi)
    return GoalTask(jnp.stack([jnp.cos(angle), jnp.sin(angle)]))


def make_point_robot_sparse():
    return PointRobotSparse(), TaskFamily("point-robot-sparse-v1", sample_half_circle_goal)
