"""``bandit-k{5,10,50}-v1``: Bernoulli multi-armed bandits (Duan et al., "RL^2", 2016, Sec. 4.1).

Definition (pinned by tests/test_rl2_envs.py):
  task: arm success probabilities p_i ~ U[0, 1] i.i.d., i = 1..k.
  one pull = one episode (H = 1): reward ~ Bernoulli(p_a), then truncated.
  obs = the constant [1.0] (a bandit has no state); a trial = n pulls, n in {10, 100, 500},
  chosen by the learner or baseline, not by the env.
The action is an integer arm index in [0, k).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metajax.envs.tasks import TaskFamily
from metajax.types import TimeStep

ARM_COUNTS = (5, 10, 50)


class BanditTask(NamedTuple):
    arm_probs: jax.Array  # [k]


@dataclasses.dataclass(frozen=True)
class BernoulliBandit:
    """A k-armed Bernoulli bandit whose arm probabilities are the task."""

    num_actions: int = 5
    horizon: int = 1
    observation_size: int = 1
    action_size: int = 1  # one integer action

    def reset(self, key, task: BanditTask):
        del key, task
        false = jnp.zeros((), bool)
        return jnp.zeros((), jnp.int32), TimeStep(jnp.ones((1,)), jnp.zeros(()), false, false)

    def step(self, key, state, action, task: BanditTask):
        del state
        reward = jax.random.bernoulli(key, task.arm_probs[action]).astype(jnp.float32)
        timestep = TimeStep(jnp.ones((1,)), reward, jnp.zeros((), bool), jnp.ones((), bool))
        return jnp.ones((), jnp.int32), timestep


def make_bandit(num_arms: int):
    def sample(key):
        return BanditTask(jax.random.uniform(key, (num_arms,)))

    return BernoulliBandit(num_actions=num_arms), TaskFamily(f"bandit-k{num_arms}-v1", sample)
