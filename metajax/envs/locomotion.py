"""Brax locomotion task families (definitions: shared/benchmarks.md; pinned by tests/test_locomotion.py).

Every family is a ``BraxTaskEnv`` on brax's bundled model with ``dt`` ≈ 0.05 s:
  name                     model / backend / substeps   reward per step                       end
  halfcheetah-vel-v1       half_cheetah / gen / 5x0.01   -|v_x - v*| - 0.05 ctrl,  v* ~ U[0, 3]   H 200
  halfcheetah-dir-v1       half_cheetah / gen / 5x0.01   d v_x - 0.05 ctrl,  d in {-1, +1}        H 200
  ant-dir-v1               ant / gen / 5x0.01            d v_x - 0.5 ctrl + 1                     z outside [0.2, 1], H 200
  ant-goal-v1              ant / gen / 5x0.01            -|xy - g|_1 - 0.1 ctrl, g = 3 sqrt(U) (cos a, sin a)  H 200
  humanoid-dir-v1          humanoid / gen / 17x0.003     1.25 <(cos t, sin t), v_xy> + 5 - 0.1 ctrl  z outside [1, 2], H 200
  walker-rand-params-v1    walker2d / gen / 25x0.002     v_x + 1 - 1e-3 ctrl                      brax's healthy ranges, H 200
  hopper-rand-params-v1    hopper / gen / 25x0.002       v_x + 1 - 1e-3 ctrl                      brax's healthy ranges, H 200
  halfcheetah-cripple-v1   half_cheetah / gen / 5x0.01   v_x - 0.05 ctrl, action dim k forced to 0   H 1000
  halfcheetah-damping-v1   half_cheetah / gen / 5x0.01   v_x - 0.05 ctrl, dof damping x U[0.5, 5]     H 1000
``v_x``: torso x-velocity over the env step (position difference / dt); ``ctrl = sum(a^2)`` of the
action in [-1, 1]. Rand-params tasks scale each body's mass and inertia and each geom's friction by
its own 1.5^U(-3, 3) and each dof's damping by 1.3^U(-3, 3). Observations: joint positions without
the global x (and y where free) plus velocities, as brax's own envs (humanoid: without brax's
centre-of-mass features). The backend is ``generalized`` everywhere: the one closest to MuJoCo and
the only one that reads ``dof.damping`` and (for ant/hopper) real masses. ``metajax.make(name,
backend="spring")`` (or ``"positional"``) gives a reward-defined family on another pipeline with
the same dt (``on_backend``): faster, less accurate.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metajax.envs.brax_env import BACKENDS, BraxTaskEnv, load_system
from metajax.envs.registry import PHYSICS_TASK_FAMILIES
from metajax.envs.tasks import TaskFamily

HEALTHY = {  # (z range, torso angle range) as in brax's walker2d / hopper
    "walker2d": ((0.8, 2.0), (-1.0, 1.0)),
    "hopper": ((0.7, float("inf")), (-0.2, 0.2)),
}


class VelocityTask(NamedTuple):
    velocity: jax.Array  # []


class DirectionTask(NamedTuple):
    direction: jax.Array  # [] in {-1, +1}


class AngleTask(NamedTuple):
    angle: jax.Array  # [] radians


class GoalTask(NamedTuple):
    goal: jax.Array  # [2]


class CrippleTask(NamedTuple):
    joint: jax.Array  # [] int32, the action dimension forced to 0


class DampingTask(NamedTuple):
    damping_scale: jax.Array  # []


class RandParamsTask(NamedTuple):
    mass: jax.Array  # [links]
    inertia: jax.Array  # [links]
    friction: jax.Array  # [geoms]
    damping: jax.Array  # [dofs]


def torso_velocity(before, after, dt):
    """Torso (link 0) velocity over one env step ``[3]``."""
    return (after.x.pos[0] - before.x.pos[0]) / dt


def ctrl_cost(action):
    return jnp.sum(jnp.square(action))


def _observe_from(skip: int, clip_velocity: float | None = None):
    """``[q[skip:], qd]``; with ``clip_velocity`` (walker/hopper, as brax) q[1] is the torso height
    and the velocities are clipped."""
    def observe(pipeline):
        q, qd = pipeline.q, pipeline.qd
        if clip_velocity is not None:
            q, qd = q.at[1].set(pipeline.x.pos[0, 2]), jnp.clip(qd, -clip_velocity, clip_velocity)
        return jnp.concatenate([q[skip:], qd])
    return observe


def _env(name, model, n_frames, horizon, reward, skip, **kwargs):
    sys = load_system(model)
    observe = kwargs.pop("observe", _observe_from(skip))
    obs_size = sys.q_size() - skip + sys.qd_size()
    return BraxTaskEnv(name=name, sys=sys, backend="generalized", n_frames=n_frames, horizon=horizon,
                       observation_size=obs_size, reward=reward, observe=observe,
                       init_q=jnp.asarray(sys.init_q), model=model, **kwargs)


# the substep brax's own envs take on spring / positional for these models (seconds)
SMALL_SUBSTEP = {"half_cheetah": 0.003125, "ant": 0.005, "humanoid": 0.0015}


def on_backend(env: BraxTaskEnv, backend: str) -> BraxTaskEnv:
    """``env`` on another brax pipeline, with the same dt per env step: spring and positional take
    brax's smaller substep for the model (``SMALL_SUBSTEP``) and more of them. Families whose tasks
    change physics stay on ``generalized``: the others ignore damping and, for ant and hopper, masses."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == env.backend:
        return env
    if env.name in PHYSICS_TASK_FAMILIES:
        raise ValueError(f"backend: {env.name}'s tasks change damping or masses, which only "
                         f"'generalized' reads; got {backend!r}")
    substep = SMALL_SUBSTEP.get(env.model, float(env.sys.opt.timestep))
    frames = max(1, round(env.dt / substep))
    return dataclasses.replace(env, backend=backend, n_frames=frames,
                               sys=env.sys.tree_replace({"opt.timestep": substep}))


def _never(pipeline):
    return jnp.zeros((), bool)


# ---- half cheetah ------------------------------------------------------------------------------

def make_halfcheetah_vel():
    def reward(task, before, after, action, dt):
        v = torso_velocity(before, after, dt)[0]
        return -jnp.abs(v - task.velocity) - 0.05 * ctrl_cost(action), _never(after)
    sample = lambda key: VelocityTask(jax.random.uniform(key, (), minval=0.0, maxval=3.0))
    return _env("halfcheetah-vel-v1", "half_cheetah", 5, 200, reward, 1), TaskFamily("halfcheetah-vel-v1", sample)


def _forward_reward(task_scale):
    def reward(task, before, after, action, dt):
        v = torso_velocity(before, after, dt)[0]
        return task_scale(task) * v - 0.05 * ctrl_cost(action), _never(after)
    return reward


def _sample_direction(key):
    return DirectionTask(jnp.where(jax.random.bernoulli(key), 1.0, -1.0))


def make_halfcheetah_dir():
    env = _env("halfcheetah-dir-v1", "half_cheetah", 5, 200, _forward_reward(lambda t: t.direction), 1)
    return env, TaskFamily("halfcheetah-dir-v1", _sample_direction, finite_size=2)


def make_halfcheetah_cripple():
    env = _env("halfcheetah-cripple-v1", "half_cheetah", 5, 1000, _forward_reward(lambda t: 1.0), 1,
               act=lambda action, task: action * (1.0 - jax.nn.one_hot(task.joint, action.shape[-1])))
    sample = lambda key: CrippleTask(jax.random.randint(key, (), 0, 6))
    return env, TaskFamily("halfcheetah-cripple-v1", sample, finite_size=6)


def make_halfcheetah_damping():
    def physics(sys, task):
        return sys.tree_replace({"dof.damping": sys.dof.damping * task.damping_scale})
    env = _env("halfcheetah-damping-v1", "half_cheetah", 5, 1000, _forward_reward(lambda t: 1.0), 1,
               physics=physics)
    sample = lambda key: DampingTask(jax.random.uniform(key, (), minval=0.5, maxval=5.0))
    return env, TaskFamily("halfcheetah-damping-v1", sample)


# ---- ant and humanoid --------------------------------------------------------------------------

def _outside(z, low, high):
    return (z < low) | (z > high)


def make_ant_dir():
    def reward(task, before, after, action, dt):
        v = torso_velocity(before, after, dt)[0]
        r = task.direction * v - 0.5 * ctrl_cost(action) + 1.0
        return r, _outside(after.x.pos[0, 2], 0.2, 1.0)
    env = _env("ant-dir-v1", "ant", 5, 200, reward, 2)
    return env, TaskFamily("ant-dir-v1", _sample_direction, finite_size=2)


def make_ant_goal():
    def reward(task, before, after, action, dt):
        return -jnp.sum(jnp.abs(after.x.pos[0, :2] - task.goal)) - 0.1 * ctrl_cost(action), _never(after)

    def sample(key):
        angle_key, radius_key = jax.random.split(key)
        angle = jax.random.uniform(angle_key, (), minval=0.0, maxval=2 * jnp.pi)
        radius = 3.0 * jnp.sqrt(jax.random.uniform(radius_key, ()))
        return GoalTask(radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)]))
    return _env("ant-goal-v1", "ant", 5, 200, reward, 2), TaskFamily("ant-goal-v1", sample)


def make_humanoid_dir():
    def reward(task, before, after, action, dt):
        v = torso_velocity(before, after, dt)[:2]
        heading = jnp.stack([jnp.cos(task.angle), jnp.sin(task.angle)])
        r = 1.25 * jnp.dot(heading, v) + 5.0 - 0.1 * ctrl_cost(action)
        return r, _outside(after.x.pos[0, 2], 1.0, 2.0)
    sample = lambda key: AngleTask(jax.random.uniform(key, (), minval=0.0, maxval=2 * jnp.pi))
    env = _env("humanoid-dir-v1", "humanoid", 17, 200, reward, 2, reset_noise=0.01, action_scale=0.4)
    return env, TaskFamily("humanoid-dir-v1", sample)


# ---- walker and hopper with random physics -----------------------------------------------------

def _rand_params(name: str, model: str):
    sys = load_system(model)
    (z_low, z_high), (a_low, a_high) = HEALTHY[model]

    def reward(task, before, after, action, dt):
        v = torso_velocity(before, after, dt)[0]
        z, angle = after.x.pos[0, 2], after.q[2]
        unhealthy = _outside(z, z_low, z_high) | _outside(angle, a_low, a_high)
        if model == "hopper":
            unhealthy |= jnp.any(jnp.abs(jnp.concatenate([after.q[2:], after.qd])) > 100.0)
        return v + 1.0 - 1e-3 * ctrl_cost(action), unhealthy

    def physics(sys, task):
        return sys.tree_replace({
            "link.inertia.mass": sys.link.inertia.mass * task.mass,
            "link.inertia.i": sys.link.inertia.i * task.inertia[:, None, None],
            "geom_friction": sys.geom_friction * task.friction[:, None],
            "dof.damping": sys.dof.damping * task.damping,
        })

    def sample(key):
        keys = jax.random.split(key, 4)
        scale = lambda k, base, n: base ** jax.random.uniform(k, (n,), minval=-3.0, maxval=3.0)
        links, geoms, dofs = sys.num_links(), sys.geom_friction.shape[0], sys.qd_size()
        return RandParamsTask(scale(keys[0], 1.5, links), scale(keys[1], 1.5, links),
                              scale(keys[2], 1.5, geoms), scale(keys[3], 1.3, dofs))

    env = _env(name, model, 25, 200, reward, 1, reset_noise=5e-3, physics=physics,
               observe=_observe_from(1, clip_velocity=10.0))
    return env, TaskFamily(name, sample)


def make_walker_rand_params():
    return _rand_params("walker-rand-params-v1", "walker2d")


def make_hopper_rand_params():
    return _rand_params("hopper-rand-params-v1", "hopper")


FAMILIES = {
    "halfcheetah-vel-v1": make_halfcheetah_vel,
    "halfcheetah-dir-v1": make_halfcheetah_dir,
    "ant-dir-v1": make_ant_dir,
    "ant-goal-v1": make_ant_goal,
    "humanoid-dir-v1": make_humanoid_dir,
    "walker-rand-params-v1": make_walker_rand_params,
    "hopper-rand-params-v1": make_hopper_rand_params,
    "halfcheetah-cripple-v1": make_halfcheetah_cripple,
    "halfcheetah-damping-v1": make_halfcheetah_damping,
}
