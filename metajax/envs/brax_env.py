"""A pure, task-parameterised wrapper of brax's physics pipelines (brax is used for physics only).

``BraxTaskEnv.step(key, state, action, task)`` runs ``n_frames`` pipeline substeps with the brax
``System`` produced by ``physics(sys, task)`` — so tasks that change masses, inertias, friction or
damping are ordinary pytree replacements inside the traced step, and a vmapped batch of tasks with
different physics is one XLA program (no env rebuild, no recompile). Reward, termination and the
action map read the task too. Actions live in ``[-1, 1]^A`` (clipped), scaled by ``action_scale``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from metajax.types import TimeStep

BACKENDS = ("generalized", "positional", "spring")


class BraxState(NamedTuple):
    pipeline: Any  # the brax pipeline state (q, qd, x, xd, ...)
    time: jax.Array  # [] int32


@functools.lru_cache(maxsize=None)
def load_system(model: str):
    """brax's bundled MJCF model ``model`` (e.g. ``"half_cheetah"``) as a ``System``."""
    from brax.io import mjcf
    from etils import epath

    return mjcf.load(epath.resource_path("brax") / f"envs/assets/{model}.xml")


def pipeline_module(backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    import importlib

    return importlib.import_module(f"brax.{backend}.pipeline")


@dataclasses.dataclass(frozen=True, eq=False)
class BraxTaskEnv:
    """One brax model driven as a pure function of (state, action, task).

    Attributes:
      sys: the brax ``System`` (after any per-backend adjustments).
      reward: ``(task, before, after, action, dt) -> (reward, terminated)`` on pipeline states.
      physics: ``(sys, task) -> sys`` (identity for reward-defined tasks).
      act: ``(action, task) -> action`` (e.g. a crippled joint); applied after clipping.
      observe: ``pipeline_state -> obs``.
    """

    name: str
    sys: Any
    backend: str
    n_frames: int
    horizon: int
    observation_size: int
    reward: Callable
    observe: Callable
    init_q: jax.Array
    reset_noise: float = 0.1
    action_scale: float = 1.0
    physics: Callable = lambda sys, task: sys
    act: Callable = lambda action, task: action
    model: str = ""  # brax's bundled model the system came from (e.g. "half_cheetah")

    @property
    def action_size(self) -> int:
        return self.sys.act_size()

    @property
    def dt(self) -> float:
        return float(self.sys.opt.timestep) * self.n_frames

    def reset(self, key, task):
        q_key, qd_key = jax.random.split(key)
        noise = self.reset_noise
        q = self.init_q + jax.random.uniform(q_key, self.init_q.shape, minval=-noise, maxval=noise)
        qd = noise * jax.random.normal(qd_key, (self.sys.qd_size(),))
        pipeline = pipeline_module(self.backend).init(self.physics(self.sys, task), q, qd)
        false = jnp.zeros((), bool)
        state = BraxState(pipeline, jnp.zeros((), jnp.int32))
        return state, TimeStep(self.observe(pipeline), jnp.zeros(()), false, false)

    def step(self, key, state: BraxState, action, task):
        del key
        sys = self.physics(self.sys, task)
        action = self.act(jnp.clip(action, -1.0, 1.0), task)
        ctrl = self.action_scale * action
        step = pipeline_module(self.backend).step

        def substep(pipeline, _):
            return step(sys, pipeline, ctrl), None

        after, _ = jax.lax.scan(substep, state.pipeline, None, length=self.n_frames)
        reward, terminated = self.reward(task, state.pipeline, after, action, self.dt)
        nonfinite = ~jnp.all(jnp.isfinite(after.q)) | ~jnp.all(jnp.isfinite(after.qd))
        terminated = terminated | nonfinite  # a diverged simulation ends the episode
        reward = jnp.where(nonfinite, 0.0, reward)
        time = state.time + 1
        truncated = (time >= self.horizon) & ~terminated
        obs = jnp.nan_to_num(self.observe(after))
        return BraxState(after, time), TimeStep(obs, reward, terminated, truncated)
