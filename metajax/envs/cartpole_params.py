"""``cartpole-params-v1``: CartPole-v1 with the task's physics (pole length, pole mass, cart mass).

Definition (pinned by tests/test_envs.py):
  task: half pole length 0.5, pole mass 0.1, cart mass 1.0, each x 2^U(-1, 1).
  dynamics: CartPole-v1's (Barto, Sutton & Anderson 1983 as in Gym): force +-10 N, gravity 9.8,
  explicit Euler with tau = 0.02 s; start state ~ U(-0.05, 0.05)^4.
  terminated when |x| > 2.4 or |angle| > 12 degrees;  r = 1 per step (the last one included);
  horizon H = 500;  obs = (x, x_dot, angle, angle_dot);  action in {0: push left, 1: push right}.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep

DEFAULT_PHYSICS = {"half_length": 0.5, "pole_mass": 0.1, "cart_mass": 1.0}


class CartPoleTask(NamedTuple):
    half_length: jax.Array  # []
    pole_mass: jax.Array  # []
    cart_mass: jax.Array  # []


class CartPoleState(NamedTuple):
    physics: jax.Array  # [4]: x, x_dot, angle, angle_dot
    time: jax.Array  # [] int32


@dataclasses.dataclass(frozen=True)
class CartPoleParams:
    """CartPole whose physical parameters come from the task."""

    horizon: int = 500
    gravity: float = 9.8
    force: float = 10.0
    tau: float = 0.02
    x_limit: float = 2.4
    angle_limit: float = 12 * 2 * math.pi / 360
    observation_size: int = 4
    action_size: int = 1  # one integer action
    num_actions: int = 2

    def reset(self, key, task: CartPoleTask):
        del task
        physics = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        false = jnp.zeros((), bool)
        return CartPoleState(physics, jnp.zeros((), jnp.int32)), TimeStep(physics, jnp.zeros(()), false, false)

    def step(self, key, state: CartPoleState, action, task: CartPoleTask):
        del key
        x, x_dot, angle, angle_dot = state.physics
        force = jnp.where(action == 1, self.force, -self.force)
        total_mass = task.pole_mass + task.cart_mass
        pole_moment = task.pole_mass * task.half_length
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        temp = (force + pole_moment * angle_dot**2 * sin) / total_mass
        angle_acc = (self.gravity * sin - cos * temp) / (
            task.half_length * (4.0 / 3.0 - task.pole_mass * cos**2 / total_mass))
        x_acc = temp - pole_moment * angle_acc * cos / total_mass
        physics = jnp.stack([x + self.tau * x_dot, x_dot + self.tau * x_acc,
                             angle + self.tau * angle_dot, angle_dot + self.tau * angle_acc])
        terminated = (jnp.abs(physics[0]) > self.x_limit) | (jnp.abs(physics[2]) > self.angle_limit)
        time = state.time + 1
        truncated = (time >= self.horizon) & ~terminated
        return CartPoleState(physics, time), TimeStep(physics, jnp.ones(()), terminated, truncated)


def sample_physics(key) -> CartPoleTask:
    exponents = jax.random.uniform(key, (3,), minval=-1.0, maxval=1.0)
    scales = 2.0**exponents
    return CartPoleTask(*(DEFAULT_PHYSICS[name] * scales[i] for i, name in enumerate(CartPoleTask._fields)))


def make_cartpole_params():
    return CartPoleParams(), TaskFamily("cartpole-params-v1", sample_physics)
