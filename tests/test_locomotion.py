"""Brax locomotion families: definitions pinned to shared/benchmarks.md, conformance, and a batch of
different physics compiling once and staying finite."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.envs import AutoReset
from metajax.envs.locomotion import FAMILIES
from metajax.testing import check_env

# a reward-defined family and one with random physics (a task that changes the model) run in the
# default CI selection; the other seven under -m heavy (each compiles brax's pipeline several times
# and steps it eagerly: 1-3 min on CPU). Termination is pinned in test_task_ranges_and_termination.
DEFAULT = ("halfcheetah-vel-v1", "walker-rand-params-v1")
HORIZONS = {"halfcheetah-cripple-v1": 1000, "halfcheetah-damping-v1": 1000}


def _family_params():
    return [pytest.param(n, marks=pytest.mark.slow if n in DEFAULT else pytest.mark.heavy) for n in FAMILIES]


@pytest.mark.parametrize("name", _family_params())
def test_conformance(name):
    env, tasks = metajax.make(name)
    assert env.horizon == HORIZONS.get(name, 200)
    assert abs(env.dt - 0.05) < 0.002
    # contact physics in float32: jit/eager and vmap/loop differ by ~2e-4 after two steps (humanoid,
    # 17 contact substeps per step: ~2e-3 on velocities of size ~7); a lost task or a wrong batch
    # axis differs by O(1)
    check_env(env, tasks, num_tasks=2, num_steps=2, tolerance=1e-2 if name == "humanoid-dir-v1" else 2e-3)


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["spring", "positional"])
@pytest.mark.parametrize("name", ["halfcheetah-vel-v1", "ant-dir-v1"])
def test_conformance_on_other_backends(name, backend):
    env, tasks = metajax.make(name, backend=backend)
    check_env(env, tasks, num_tasks=2, num_steps=2, tolerance=2e-3)


@functools.lru_cache(maxsize=None)
def _reset_and_step(name):
    """``name``'s env and one compiled program that resets it and takes one step."""
    env, _ = metajax.make(name)

    def run(task, action):
        state, _ = env.reset(jax.random.key(0), task)
        after, ts = env.step(jax.random.key(1), state, action, task)
        return state, after, ts
    return env, jax.jit(run)


def _one_step(name, task, action):
    env, run = _reset_and_step(name)
    state, after, ts = run(task, action)
    v = (after.pipeline.x.pos[0] - state.pipeline.x.pos[0]) / env.dt
    return env, state, after, ts, np.asarray(v)


def _reward_of(name, task, state, after, action):
    """``name``'s reward for a transition stepped by another family on the same model. Every family's
    step computes its reward the same way (``BraxTaskEnv.step``), so one compiled step per model
    serves the families that differ only in reward (each compiled step costs ~10 s on CPU)."""
    env, _ = metajax.make(name)
    return env.reward(task, state.pipeline, after.pipeline, action, env.dt)[0]


@pytest.mark.slow
def test_rewards_equal_the_benchmark_formulas():
    from metajax.envs import locomotion as loco

    a = jnp.linspace(-0.9, 0.9, 6)
    ctrl = float(jnp.sum(a**2))
    # a crippled joint: its action is zeroed before the physics and the control cost
    _, state, after, ts, v = _one_step("halfcheetah-cripple-v1", loco.CrippleTask(jnp.int32(2)), a)
    np.testing.assert_allclose(ts.reward, v[0] - 0.05 * (ctrl - float(a[2] ** 2)), rtol=1e-5, atol=1e-5)
    _, _, same, _, _ = _one_step("halfcheetah-cripple-v1", loco.CrippleTask(jnp.int32(2)), a.at[2].set(0.7))
    np.testing.assert_allclose(same.pipeline.q, after.pipeline.q, atol=1e-6)
    assert abs(v[0]) > 0.01  # the formulas below see a moving torso
    np.testing.assert_allclose(_reward_of("halfcheetah-vel-v1", loco.VelocityTask(jnp.float32(1.7)), state, after, a),
                               -abs(v[0] - 1.7) - 0.05 * ctrl, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_reward_of("halfcheetah-dir-v1", loco.DirectionTask(jnp.float32(-1.0)), state, after, a),
                               -v[0] - 0.05 * ctrl, rtol=1e-5, atol=1e-5)
    b = jnp.linspace(-0.5, 0.8, 8)
    ctrl_b = float(jnp.sum(b**2))
    goal = jnp.array([1.5, -2.0])
    _, state, after, ts, v = _one_step("ant-goal-v1", loco.GoalTask(goal), b)
    xy = np.asarray(after.pipeline.x.pos[0, :2])
    np.testing.assert_allclose(ts.reward, -np.abs(xy - goal).sum() - 0.1 * ctrl_b, rtol=1e-5, atol=1e-5)
    assert abs(v[0]) > 0.01
    np.testing.assert_allclose(_reward_of("ant-dir-v1", loco.DirectionTask(jnp.float32(1.0)), state, after, b),
                               v[0] - 0.5 * ctrl_b + 1.0, rtol=1e-5, atol=1e-5)
    c = jnp.full(17, 0.3)
    _, _, _, ts, v = _one_step("humanoid-dir-v1", loco.AngleTask(jnp.float32(2.0)), c)
    expected = 1.25 * (np.cos(2.0) * v[0] + np.sin(2.0) * v[1]) + 5.0 - 0.1 * 17 * 0.09
    np.testing.assert_allclose(ts.reward, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_task_ranges_and_termination():
    from metajax.envs import locomotion as loco

    key = jax.random.key(0)
    keys = jax.random.split(key, 2000)
    sample = lambda name: jax.vmap(metajax.make(name)[1].sample)(keys)
    vel = np.asarray(sample("halfcheetah-vel-v1").velocity)
    assert vel.min() >= 0 and vel.max() <= 3.0 and vel.min() < 0.01 and vel.max() > 2.99
    assert set(np.asarray(sample("ant-dir-v1").direction).tolist()) == {-1.0, 1.0}
    goals = np.asarray(sample("ant-goal-v1").goal)
    radius = np.linalg.norm(goals, axis=1)
    assert radius.max() <= 3.0 + 1e-5 and abs(np.mean(radius**2) - 4.5) < 0.3  # r = 3 sqrt(U): E r^2 = 4.5
    assert set(np.asarray(sample("halfcheetah-cripple-v1").joint).tolist()) == set(range(6))
    damping = np.asarray(sample("halfcheetah-damping-v1").damping_scale)
    assert damping.min() >= 0.5 and damping.max() <= 5.0
    params = sample("walker-rand-params-v1")
    for field, base in (("mass", 1.5), ("inertia", 1.5), ("friction", 1.5), ("damping", 1.3)):
        exponents = np.log(np.asarray(getattr(params, field))) / np.log(base)
        assert exponents.min() >= -3 - 1e-4 and exponents.max() <= 3 + 1e-4 and exponents.std() > 1.5
    # ant: terminated once the torso leaves z in [0.2, 1.0]
    env, _ = metajax.make("ant-dir-v1")
    task = loco.DirectionTask(jnp.float32(1.0))
    # the reset state of the rewards test's compiled ant program (an eager brax reset compiles ~600 ops)
    _, state, _, _, _ = _one_step("ant-goal-v1", loco.GoalTask(jnp.array([1.5, -2.0])), jnp.linspace(-0.5, 0.8, 8))
    low = state._replace(pipeline=state.pipeline.replace(
        x=state.pipeline.x.replace(pos=state.pipeline.x.pos.at[0, 2].set(0.1))))
    assert not bool(env.reward(task, state.pipeline, state.pipeline, jnp.zeros(8), 0.05)[1])
    assert bool(env.reward(task, low.pipeline, low.pipeline, jnp.zeros(8), 0.05)[1])


def _physics_batch_stays_finite(name, num_tasks):
    """A horizon of random actions with auto-reset (as rollouts run) stays finite for every task.
    (Left to fall on after termination, 17 of 256 walker tasks diverge within 200 steps.)"""
    base, tasks = metajax.make(name)
    env = AutoReset(base)
    batch = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(0), num_tasks))
    traces = []

    def run(task, key):
        traces.append(1)
        state, _ = env.reset(key, task)

        def body(state, k):
            action = jax.random.uniform(k, (env.action_size,), minval=-1.0, maxval=1.0)
            state, _ = env.step(k, state, action, task)
            finite = jnp.all(jnp.isfinite(state.pipeline.q)) & jnp.all(jnp.isfinite(state.pipeline.qd))
            return state, finite
        return jax.lax.scan(body, state, jax.random.split(key, env.horizon))[1]

    runner = jax.jit(jax.vmap(run))
    finite = runner(batch, jax.random.split(jax.random.key(1), num_tasks))
    assert bool(jnp.all(finite)), f"{int((~finite).sum())} non-finite steps"
    other = jax.vmap(tasks.sample)(jax.random.split(jax.random.key(2), num_tasks))
    runner(other, jax.random.split(jax.random.key(3), num_tasks))
    assert len(traces) == 1, "a new batch of physics must not recompile"


@pytest.mark.slow
def test_256_different_physics_compile_once_and_stay_finite():
    _physics_batch_stays_finite("walker-rand-params-v1", 256)


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["hopper-rand-params-v1", "halfcheetah-damping-v1"])
def test_other_physics_families_stay_finite(name):
    _physics_batch_stays_finite(name, 256)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n == "halfcheetah-vel-v1"
                                               else pytest.mark.heavy) for n in FAMILIES])
def test_smoke_meta_iteration(name):
    from metajax.learners import MAMLConfig, make_maml

    env, tasks = metajax.make(name)
    learner = make_maml(env, tasks, MAMLConfig(meta_batch_size=2, rollouts_per_task=2, hidden_sizes=(16,),
                                               cg_iters=3, inner_lr=0.1))
    state, metrics = jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values()), metrics
    assert int(state.step) == 1


def test_other_backends_keep_the_env_step_and_refuse_physics_tasks():
    for name, frames in (("halfcheetah-vel-v1", 16), ("ant-dir-v1", 10)):
        env = metajax.make(name, backend="spring")[0]
        assert (env.backend, env.n_frames) == ("spring", frames)
        assert env.dt == pytest.approx(metajax.make(name)[0].dt)
    env, task_dist = metajax.make("halfcheetah-vel-v1", backend="spring")
    task, key = task_dist.sample(jax.random.key(0)), jax.random.key(1)

    def run(key):
        state, _ = env.reset(key, task)

        def body(state, k):
            state, ts = env.step(k, state, jax.random.uniform(k, (env.action_size,), minval=-1, maxval=1), task)
            return state, ts.observation
        return jax.lax.scan(body, state, jax.random.split(key, 20))
    state, obs = jax.jit(run)(key)
    assert bool(jnp.all(jnp.isfinite(obs))) and int(state.time) == 20
    for name, backend, match in (("walker-rand-params-v1", "spring", "only 'generalized' reads"),
                                 ("point-nav-v1", "spring", "backend applies to the brax families"),
                                 ("ant-dir-v1", "mjx", "backend must be one of generalized, positional, spring")):
        with pytest.raises(ValueError, match=match):
            metajax.make(name, backend=backend)


@pytest.mark.heavy
@pytest.mark.parametrize("learner", ["maml", "promp"])
def test_locomotion_experiment_smoke(tmp_path, learner):
    import experiments.maml_halfcheetah_vel  # noqa: F401  (the thin module imports cleanly)
    from experiments.locomotion import main

    row = main(["--smoke", "--learner", learner, "--out-dir", str(tmp_path)], family="halfcheetah-vel-v1")
    assert row["iterations"] == 2 and np.isfinite(row["pre"]) and np.isfinite(row["oracle"])
    assert (tmp_path / "before_adaptation.html").stat().st_size > 1000
    assert (tmp_path / "after_adaptation.html").exists() and (tmp_path / "results.csv").exists()
    if learner == "maml":  # evaluating the finished run again keeps its training time
        again = main(["--smoke", "--learner", learner, "--out-dir", str(tmp_path), "--resume"],
                     family="halfcheetah-vel-v1")
        assert again["iterations"] == 2 and again["train_seconds"] == row["train_seconds"] > 0
        assert again["oracle_cached"] and again["oracle"] == row["oracle"]  # read back, not retrained
        before = sorted(p.name for p in tmp_path.iterdir())
        alone = main(["--smoke", "--out-dir", str(tmp_path), "--oracle-only"], family="halfcheetah-vel-v1")
        assert alone["oracle_cached"] and alone["oracle"] == row["oracle"] and "iterations" not in alone
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # the run directory is untouched
