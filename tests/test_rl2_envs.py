"""The RL^2 task families (bandits, maze) pinned to benchmarks.md, and the classical baselines."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.classical import bandits, mdps
from metajax.envs.bandit import BanditTask
from metajax.envs.maze import LAYOUTS, MOVES, MazeState, MazeTask, maze_as_mdp
from metajax.envs.tabular_mdp import MDPTask, TabularMDP, optimal_values
from metajax.testing import check_env


@pytest.mark.parametrize("name", ["bandit-k5-v1", "bandit-k50-v1", "maze-v1"])
def test_conformance(name):
    env, tasks = metajax.make(name)
    check_env(env, tasks)


@pytest.mark.parametrize("k", [5, 10, 50])
def test_bandit_definition(k):
    env, tasks = metajax.make(f"bandit-k{k}-v1")
    assert env.num_actions == k and env.horizon == 1 and tasks.name == f"bandit-k{k}-v1"
    probs = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 4000)).arm_probs
    assert probs.shape == (4000, k)
    assert 0.0 <= float(probs.min()) < 0.01 and 0.99 < float(probs.max()) <= 1.0
    np.testing.assert_allclose(float(probs.mean()), 0.5, atol=0.01)
    np.testing.assert_allclose(float(probs.var()), 1 / 12, atol=0.005)
    task = BanditTask(jnp.linspace(0.1, 0.9, k))
    state, _ = env.reset(jax.random.key(0), task)
    keys = jax.random.split(jax.random.key(1), 20000)
    _, ts = jax.vmap(env.step, in_axes=(0, None, None, None))(keys, state, k - 1, task)
    assert bool(jnp.all(ts.truncated)) and not bool(jnp.any(ts.terminated))  # one pull = one episode
    np.testing.assert_allclose(float(ts.reward.mean()), 0.9, atol=0.01)
    assert set(np.unique(np.asarray(ts.reward))) == {0.0, 1.0}


def _reachable(walls, start):
    seen, queue = {start}, collections.deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if walls[nxt] == 0 and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def test_maze_layouts_and_dynamics():
    env, tasks = metajax.make("maze-v1")
    assert env.horizon == 100 and env.num_actions == 4 and env.observation_size == 11
    for walls in LAYOUTS:
        assert walls.shape == (9, 9) and (walls == 0).sum() == 31
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
        assert len(_reachable(walls, (1, 1))) == 31  # one connected maze
    sampled = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), 500))
    assert set(np.unique(np.asarray(sampled.layout))) == set(range(len(LAYOUTS)))
    assert all(LAYOUTS[int(l)][tuple(np.asarray(g))] == 0 for l, g in zip(sampled.layout, sampled.goal))
    # a finite family: 4 x 31 (layout, goal) pairs, and the test set's 1,000 draws all come from them
    assert tasks.finite_size == 124
    test = tasks.test_tasks(1000)
    distinct = {(int(l), *map(int, g)) for l, g in zip(np.asarray(test.layout), np.asarray(test.goal))}
    assert len(distinct) == 124
    # layout 0: (1, 1) has a wall to the right, an open cell below; the goal sits at (3, 1)
    task = MazeTask(jnp.array(0), jnp.array([3, 1]))
    state = MazeState(jnp.array([1, 1]), jnp.array(0))
    state, ts = env.step(jax.random.key(0), state, 3, task)  # right: a wall, stay
    np.testing.assert_array_equal(state.position, [1, 1])
    assert float(ts.reward) == 0.0
    np.testing.assert_allclose(ts.observation[:9], LAYOUTS[0][0:3, 0:3].reshape(-1))
    np.testing.assert_allclose(ts.observation[9:], [1 / 8, 1 / 8])
    state, ts = env.step(jax.random.key(0), state, 1, task)  # down: (2, 1)
    np.testing.assert_array_equal(state.position, [2, 1])
    state, ts = env.step(jax.random.key(3), state, 1, task)  # down again: the goal, +1, respawn
    assert float(ts.reward) == 1.0 and not bool(ts.terminated)
    assert LAYOUTS[0][tuple(np.asarray(state.position))] == 0 and not np.array_equal(state.position, [3, 1])
    for key in jax.random.split(jax.random.key(5), 20):
        start, _ = env.reset(key, task)
        assert LAYOUTS[0][tuple(np.asarray(start.position))] == 0
        assert not np.array_equal(start.position, [3, 1])


def test_maze_as_mdp_oracle_matches_the_env():
    """Value iteration on the MDP form equals Monte Carlo of its greedy policy played in the env."""
    env, tasks = metajax.make("maze-v1")
    task = jax.tree.map(lambda x: x[3], tasks.test_tasks(8))
    mdp, start = maze_as_mdp(task)
    np.testing.assert_allclose(np.asarray(mdp.transitions.sum(-1)), 1.0, atol=1e-6)
    expected = float(start @ optimal_values(mdp, env.horizon))
    q_values = mdps.greedy_q_values(mdp, env.horizon)

    def episode(key):
        reset_key, key = jax.random.split(key)
        state, _ = env.reset(reset_key, task)

        def body(state, inputs):
            h, step_key = inputs
            cell = state.position[0] * 9 + state.position[1]
            state, ts = env.step(step_key, state, jnp.argmax(q_values[h, cell]), task)
            return state, ts.reward

        return jnp.sum(jax.lax.scan(body, state, (jnp.arange(env.horizon), jax.random.split(key, env.horizon)))[1])

    returns = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 2000))
    assert expected > 5.0
    np.testing.assert_allclose(float(returns.mean()), expected, atol=4 * float(returns.std()) / np.sqrt(2000))


def test_bandit_baselines_on_a_degenerate_bandit():
    env, _ = metajax.make("bandit-k5-v1")
    task = BanditTask(jnp.array([0.0, 0.0, 1.0, 0.0, 0.0]))
    n = 50
    keys = jax.random.split(jax.random.key(0), 200)

    def totals(rule):
        return jax.vmap(lambda k: jnp.sum(bandits.run_trial(env, rule, task, k, n)))(keys)

    # greedy (epsilon = 0) tries each arm once, then the only paying arm for ever
    np.testing.assert_array_equal(totals(bandits.epsilon_greedy_rule(0.0)), n - 4)
    # UCB1: mean + sqrt(2 ln t / pulls), hand-computed: a losing arm tried once still wins at t = 14
    # (sqrt(2 ln 14) = 2.30 > 1 + sqrt(2 ln 14 / 10) = 1.73), the paying arm wins at t = 50
    assert int(bandits.ucb1_rule(keys[0], jnp.array([1., 1, 10, 1, 1]), jnp.array([0., 0, 10, 0, 0]), 14)) != 2
    assert int(bandits.ucb1_rule(keys[0], jnp.array([5., 5, 30, 5, 5]), jnp.array([0., 0, 30, 0, 0]), 50)) == 2
    long_trial = bandits.run_trial(env, bandits.ucb1_rule, task, keys[0], 500)
    assert float(jnp.sum(long_trial[:5])) == 1.0  # every arm once first
    assert 0.85 * 500 < float(jnp.sum(long_trial)) < 500 - 20  # ~12 pulls of each losing arm
    np.testing.assert_array_equal(totals(bandits.best_arm_rule(task)), n)
    assert float(totals(bandits.thompson_rule).mean()) > n - 8
    np.testing.assert_allclose(float(totals(bandits.random_rule).mean()), n / 5, atol=1.0)
    # epsilon-greedy explores: about epsilon * (n - 5) * 4/5 random pulls miss
    np.testing.assert_allclose(float(totals(bandits.epsilon_greedy_rule(0.5)).mean()),
                               1 + (n - 5) * (1 - 0.5 * 0.8), atol=1.0)


def test_bandit_baselines_order_on_test_tasks():
    env, tasks = metajax.make("bandit-k5-v1")
    results = bandits.trial_returns(env, tasks.test_tasks(500), jax.random.key(0), 100)
    means = {name: float(v.mean()) for name, v in results.items()}
    np.testing.assert_allclose(means["random"], 50.0, atol=1.5)
    np.testing.assert_allclose(means["oracle"], 100 * 5 / 6, atol=1.5)  # E[max of 5 uniforms] = 5/6
    assert means["random"] + 15 < means["ucb1"] < means["thompson"] < means["oracle"]


def test_psrl_finds_the_good_action_and_oracle_matches_value_iteration():
    env = TabularMDP(num_states=2, num_actions=2, horizon=5)
    task = MDPTask(jnp.array([[3.0, -3.0], [3.0, -3.0]]), jnp.full((2, 2, 2), 0.5))
    keys = jax.random.split(jax.random.key(0), 200)
    psrl = jax.vmap(lambda k: mdps.psrl_trial(env, task, k, 20))(keys)  # [200, 20]
    oracle = jax.vmap(lambda k: mdps.oracle_trial(env, task, k, 20))(keys)
    np.testing.assert_allclose(float(oracle.mean()), 15.0, atol=0.1)  # 5 steps of mean 3
    assert float(psrl[:, 10:].mean()) > 14.7 and float(psrl[:, 0].mean()) < float(psrl[:, 10:].mean())
    random = jax.vmap(lambda k: mdps.random_trial(env, task, k, 20))(keys)
    np.testing.assert_allclose(float(random.mean()), 0.0, atol=0.2)
    # the hand-solvable MDP of the tabular tests: Q_h = r + sum_s' P V_{h+1}
    q = mdps.greedy_q_values(task, 5)
    np.testing.assert_allclose(np.asarray(q[0]), [[15.0, 9.0], [15.0, 9.0]], atol=1e-5)
