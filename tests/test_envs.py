"""Env definitions pinned to shared/benchmarks.md, the registry, wrappers and conformance."""
import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.envs import AutoReset, EpisodeStats
from metajax.envs.point_nav import GoalTask
from metajax.testing import check_env

NAMES = ["point-nav-v1", "point-robot-sparse-v1", "cartpole-params-v1", "tabular-mdp-v1"]


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name):
    env, tasks = metajax.make(name)
    check_env(env, tasks)


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="point-nav-v1") as err:
        metajax.make("point-nav-v0")
    assert "valid names" in str(err.value) and "point-robot-sparse-v1" in str(err.value)


def test_test_tasks_are_pinned_and_independent_of_jax_prng_flags():
    """The meta-test set is part of the versioned definition: the same goals on every supported jax,
    whatever ``jax_threefry_partitionable`` (whose default changed in jax 0.5) is set to."""
    _, tasks = metajax.make("point-nav-v1")
    expected = [[-0.21392119, 0.16763675], [0.33928502, 0.23969758], [-0.17661619, 0.3759998]]
    for partitionable in (True, False):
        with jax.threefry_partitionable(partitionable):
            np.testing.assert_allclose(tasks.test_tasks(3).goal, expected, atol=1e-6)
    np.testing.assert_allclose(tasks.test_tasks(40).goal[:3], expected, atol=1e-6)  # a prefix


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


def test_auto_reset_also_returns_the_observation_an_episode_ended_in():
    env, _ = metajax.make("point-nav-v1")
    wrapped = EpisodeStats(AutoReset(env))
    task = GoalTask(jnp.array([0.45, 0.45]))
    state, _ = wrapped.reset(jax.random.key(0), task)

    def body(state, key):  # full speed along x, away from the goal: every episode runs 100 steps
        state, ts, final = wrapped.step_with_final_observation(key, state, jnp.array([1.0, 0.0]), task)
        return state, (ts.observation, final)

    state, (observation, final) = jax.lax.scan(body, state, jax.random.split(jax.random.key(1), 100))
    np.testing.assert_allclose(final[98], [9.9, 0.0], rtol=1e-5)
    np.testing.assert_allclose(observation[98], [9.9, 0.0], rtol=1e-5)
    np.testing.assert_allclose(final[99], [10.0, 0.0], rtol=1e-5)  # where the time limit cut it off
    np.testing.assert_allclose(observation[99], [0.0, 0.0])  # the next episode's start
    assert int(state.episodes) == 1
    copied = pickle.loads(pickle.dumps(copy.deepcopy(wrapped)))  # wrappers forward attributes safely
    assert copied.horizon == 100


def test_cartpole_params_definition():
    from metajax.envs.cartpole_params import CartPoleTask

    env, tasks = metajax.make("cartpole-params-v1")
    assert env.horizon == 500 and env.observation_size == 4 and env.num_actions == 2
    sampled = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 4000))
    for name, default in (("half_length", 0.5), ("pole_mass", 0.1), ("cart_mass", 1.0)):
        ratio = np.asarray(getattr(sampled, name)) / default
        assert ratio.min() >= 0.5 - 1e-6 and ratio.max() <= 2.0 + 1e-6
        assert ratio.min() < 0.52 and ratio.max() > 1.9
        # log2 of the scale is uniform on [-1, 1]: mean 0, variance 1/3
        assert abs(np.log2(ratio).mean()) < 0.05 and abs(np.log2(ratio).var() - 1 / 3) < 0.03
    state, ts = env.reset(jax.random.key(1), tasks.sample(jax.random.key(2)))
    assert np.all(np.abs(np.asarray(ts.observation)) <= 0.05)
    # one Euler step of CartPole-v1 by hand, at the default physics with a heavier cart
    task = CartPoleTask(jnp.float32(0.5), jnp.float32(0.1), jnp.float32(2.0))
    start = state._replace(physics=jnp.array([0.1, -0.2, 0.05, 0.3]))
    _, ts = env.step(jax.random.key(3), start, jnp.int32(1), task)
    x, v, a, w = 0.1, -0.2, 0.05, 0.3
    total, moment = 2.1, 0.1 * 0.5
    temp = (10.0 + moment * w**2 * np.sin(a)) / total
    a_acc = (9.8 * np.sin(a) - np.cos(a) * temp) / (0.5 * (4 / 3 - 0.1 * np.cos(a) ** 2 / total))
    x_acc = temp - moment * a_acc * np.cos(a) / total
    expected = [x + 0.02 * v, v + 0.02 * x_acc, a + 0.02 * w, w + 0.02 * a_acc]
    np.testing.assert_allclose(ts.observation, expected, rtol=1e-5, atol=1e-6)
    assert float(ts.reward) == 1.0 and not bool(ts.terminated)
    # terminated past 12 degrees or |x| > 2.4
    tilted = start._replace(physics=jnp.array([0.0, 0.0, 0.2094, 1.0]))
    assert bool(env.step(jax.random.key(3), tilted, jnp.int32(0), task)[1].terminated)
    off = start._replace(physics=jnp.array([2.399, 1.0, 0.0, 0.0]))
    assert bool(env.step(jax.random.key(3), off, jnp.int32(1), task)[1].terminated)


def test_tabular_mdp_definition_and_exact_solvers():
    from metajax.envs.tabular_mdp import MDPTask, expected_return, optimal_return

    env, tasks = metajax.make("tabular-mdp-v1")
    assert (env.num_states, env.num_actions, env.horizon) == (10, 5, 10)
    sampled = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 2000))
    assert sampled.reward_mean.shape == (2000, 10, 5) and sampled.transitions.shape == (2000, 10, 5, 10)
    assert abs(float(sampled.reward_mean.mean()) - 1.0) < 0.02
    assert abs(float(sampled.reward_mean.std()) - 1.0) < 0.02
    np.testing.assert_allclose(sampled.transitions.sum(-1), 1.0, rtol=1e-5)
    # Dirichlet(1, ..., 1) over 10 states: each probability has mean 0.1 and variance 0.9/110
    assert abs(float(sampled.transitions.var()) - 0.9 / 110) < 5e-4
    _, ts = env.reset(jax.random.key(0), jax.tree.map(lambda x: x[0], sampled))
    np.testing.assert_array_equal(ts.observation, np.eye(10)[0])
    # a hand-solved 2-state MDP: staying in state 1 pays 2 per step, getting there costs a step
    task = MDPTask(jnp.array([[1.0, 0.0], [0.0, 2.0]]),
                   jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]))
    # H=1: take the 1; H=3: move (0) then stay (2 + 2) = 4 beats 1 + 1 + 1
    assert float(optimal_return(task, 1)) == 1.0 and float(optimal_return(task, 3)) == 4.0
    uniform = jnp.full((2, 2), 0.5)
    # exact evaluation of the uniform policy equals a Monte Carlo estimate
    small = env.__class__(num_states=2, num_actions=2, horizon=3, reward_noise=0.0)
    from metajax.rollout import rollout

    def act(key, obs):
        return jax.random.randint(key, obs.shape[:1], 0, 2), jnp.full(obs.shape[:1], np.log(0.5))
    batch = rollout(small, act, task, jax.random.key(4), 20000)
    mc = float((batch.reward * batch.valid).sum(0).mean())
    assert abs(mc - float(expected_return(uniform, task, 3))) < 0.03
