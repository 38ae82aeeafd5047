"""Env definitions pinned to shared/benchmarks.md, the registry, wrappers and conformance."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.envs import AutoReset, EpisodeStats
from metajax.envs.point_nav import GoalTask
from metajax.testing import check_env

NAMES = ["point-nav-v1", "point-robot-sparse-v1"]


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name):
    env, tasks = metajax.make(name)
    check_env(env, tasks)


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="point-nav-v1") as err:
        metajax.make("point-nav-v0")
    assert "valid names" in str(err.value) and "point-robot-sparse-v1" in str(err.value)


def test_point_nav_definition():
    env, tasks = metajax.make("point-nav-v1")
    assert env.horizon == 100 and env.observation_size == 2 and env.action_size == 2
    goals = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 4000)).goal
    assert goals.shape == (4000, 2)
    assert float(goals.min()) >= -0.5 and float(goals.max()) <= 0.5
    assert float(goals.min()) < -0.49 and float(goals.max()) > 0.49
    task = GoalTask(jnp.array([0.3, -0.2]))
    state, ts = env.reset(jax.random.key(0), task)
    np.testing.assert_allclose(ts.observation, [0.0, 0.0])
    # s' = s + clip(0.1 a, -0.1, 0.1); r = -||s' - g||
    state, ts = env.step(jax.random.key(1), state, jnp.array([0.5, -3.0]), task)
    np.testing.assert_allclose(ts.observation, [0.05, -0.1], atol=1e-7)
    np.testing.assert_allclose(ts.reward, -np.hypot(0.05 - 0.3, -0.1 + 0.2), rtol=1e-6)
    assert not bool(ts.terminated) and not bool(ts.truncated)
    # terminated when |s' - g| < 0.01 in both coordinates
    near = GoalTask(jnp.array([0.055, -0.095]))
    _, ts = env.step(jax.random.key(1), env.reset(jax.random.key(0), near)[0], jnp.array([0.5, -1.0]), near)
    assert bool(ts.terminated)
    # truncated at the horizon
    for _ in range(99):
        state, ts = env.step(jax.random.key(2), state, jnp.zeros(2), task)
    assert bool(ts.truncated) and not bool(ts.terminated)


def test_point_nav_fixed_test_tasks_are_seeded_and_versioned():
    _, tasks = metajax.make("point-nav-v1")
    a, b = tasks.test_tasks(40), tasks.test_tasks(40)
    np.testing.assert_array_equal(a.goal, b.goal)
    assert a.goal.shape == (40, 2)
    assert not np.allclose(tasks.fixed_tasks("train", 40).goal, a.goal)
    with pytest.raises(ValueError, match="split must be one of"):
        tasks.fixed_tasks("validation", 3)


def test_point_robot_sparse_definition():
    env, tasks = metajax.make("point-robot-sparse-v1")
    assert env.horizon == 20
    goals = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 1000)).goal
    np.testing.assert_allclose(jnp.linalg.norm(goals, axis=1), 1.0, rtol=1e-5)
    assert float(goals[:, 1].min()) >= -1e-6  # upper half-circle: angle in [0, pi]
    task = GoalTask(jnp.array([0.0, 1.0]))
    state, _ = env.reset(jax.random.key(0), task)
    state, ts = env.step(jax.random.key(0), state, jnp.array([0.5, 0.05]), task)  # clipped to 0.1
    np.testing.assert_allclose(ts.observation, [0.1, 0.05], atol=1e-7)
    assert float(ts.reward) == 0.0  # far from the goal: sparse reward is 0
    near = state._replace(position=jnp.array([0.0, 0.75]))
    _, ts = env.step(jax.random.key(0), near, jnp.array([0.0, 0.1]), task)
    np.testing.assert_allclose(ts.reward, 1.0 - 0.15, rtol=1e-5)  # inside radius 0.2
    dense_env = type(env)(dense=True)
    _, ts = dense_env.step(jax.random.key(0), near, jnp.array([0.0, 0.1]), task)
    np.testing.assert_allclose(ts.reward, -0.15, rtol=1e-5)


def test_auto_reset_keeps_task_and_episode_stats():
    env, _ = metajax.make("point-nav-v1")
    wrapped = EpisodeStats(AutoReset(env))
    task = GoalTask(jnp.array([0.45, 0.45]))
    state, _ = wrapped.reset(jax.random.key(0), task)

    def body(state, key):
        state, ts = wrapped.step(key, state, jnp.zeros(2), task)
        return state, ts

    state, ts = jax.lax.scan(body, state, jax.random.split(jax.random.key(1), 250))
    assert int(state.episodes) == 2
    assert int(state.last_length) == 100
    np.testing.assert_allclose(state.last_return, -100 * np.hypot(0.45, 0.45), rtol=1e-5)
    # after each reset the agent is back at the start and the reward still uses the same goal
    np.testing.assert_allclose(ts.observation[99], [0.0, 0.0])
    np.testing.assert_allclose(ts.reward[100], -np.hypot(0.45, 0.45), rtol=1e-6)
    assert int(state.episode_length) == 50
