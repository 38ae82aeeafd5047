"""Conformance checks every env and every learner must pass (used by the test-suite).

``check_env``: jit and eager agree; vmap over tasks agrees with a Python loop; an auto-reset keeps
the task. ``check_learner``: ``meta_step`` compiles once; jit and eager agree; metrics are finite;
a ``lax.scan`` of ``meta_step`` equals a Python loop of it; vmapped ``adapt`` equals a loop.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metajax.envs.wrappers import AutoReset
from metajax.training import make_chunk


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5, what=""):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b, f"{what}: tree structures differ: {tree_a} vs {tree_b}"
    for x, y in zip(leaves_a, leaves_b):
        if jax.dtypes.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=what)


def _random_actions(env, key, shape=()):
    return jax.random.uniform(key, shape + (env.action_size,), minval=-1.5, maxval=1.5)


def _discrete_or_continuous_actions(env, key, shape=()):
    if getattr(env, "num_actions", None):
        return jax.random.randint(key, shape, 0, env.num_actions)
    return _random_actions(env, key, shape)


# jax records this event once per XLA compilation (jax.monitoring; the name is stable since 0.4),
# also when the executable is read from the persistent compilation cache instead
_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_backend_compiles = [0]


def _count_backend_compile(event, duration, **kwargs):
    if event == _BACKEND_COMPILE_EVENT:
        _backend_compiles[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_backend_compile)


def _jit_once(fn):
    """``jax.jit(fn)`` whose arguments are first committed to the default device, and whose
    ``compiles`` attribute counts the XLA compilations its calls caused. Which arguments are
    committed is part of the compilation cache key, and eager results mix both kinds, so calls on
    eager values and on jitted outputs would otherwise compile the same program twice."""
    jitted = jax.jit(fn)

    def call(*args):
        before = _backend_compiles[0]
        out = jitted(*jax.device_put(args, jax.devices()[0]))
        call.compiles += _backend_compiles[0] - before
        return out

    call.compiles = 0
    return call


def _assert_compiled_once(program, name: str, calls: int) -> None:
    assert program.compiles == 1, (
        f"{name} compiled {program.compiles} times in {calls} calls (XLA compilations counted through "
        f"jax.monitoring's {_BACKEND_COMPILE_EVENT!r} event)")


def check_env(env, task_dist, num_tasks: int = 3, num_steps: int = 5, seed: int = 0,
              tolerance: float = 1e-5) -> None:
    """Assert the env contract on a few sampled tasks; ``tolerance`` (relative and absolute) bounds
    float32 differences between jit/eager and vmap/loop (contact physics needs ~1e-3)."""
    key = jax.random.key(seed)
    task_key, reset_key, step_key, action_key = jax.random.split(key, 4)
    tasks = jax.vmap(task_dist.sample)(jax.random.split(task_key, num_tasks))
    task0 = jax.tree.map(lambda x: x[0], tasks)
    action = _discrete_or_continuous_actions(env, action_key)

    # jit == eager
    eager = env.reset(reset_key, task0)
    jit_reset, jit_step = _jit_once(env.reset), _jit_once(env.step)
    jitted = jit_reset(reset_key, task0)
    tol = dict(rtol=tolerance, atol=tolerance)
    assert_trees_close(eager, jitted, **tol, what="reset: jit vs eager")
    eager_step = env.step(step_key, eager[0], action, task0)
    jitted_step = jit_step(step_key, eager[0], action, task0)
    assert_trees_close(eager_step, jitted_step, **tol, what="step: jit vs eager")
    ts = eager_step[1]
    assert ts.observation.shape == (env.observation_size,), "observation shape"
    assert ts.reward.shape == () and ts.terminated.dtype == bool and ts.truncated.dtype == bool

    # vmap over tasks == loop
    def run(task, k, reset=env.reset, step=env.step):
        state, _ = reset(k, task)
        rewards = []
        for i, sk in enumerate(jax.random.split(k, num_steps)):
            state, ts = step(sk, state, _discrete_or_continuous_actions(env, jax.random.fold_in(k, i)), task)
            rewards.append(ts.reward)
        return jnp.stack(rewards), ts.observation

    keys = jax.random.split(reset_key, num_tasks)
    batched = jax.jit(jax.vmap(run))(tasks, keys)
    for i in range(num_tasks):  # one task at a time, through the single-task programs compiled above
        looped = run(jax.tree.map(lambda x: x[i], tasks), keys[i], jit_reset, jit_step)
        assert_trees_close(jax.tree.map(lambda x: x[i], batched), looped, **tol, what=f"vmap vs loop, task {i}")
    _assert_compiled_once(jit_reset, "reset", 1 + num_tasks)
    _assert_compiled_once(jit_step, "step", 1 + num_tasks * num_steps)

    # an auto-reset keeps the task: the episode after the reset replays the first one exactly when
    # given the same actions and keys (the first episode starts from the reset key the auto-reset
    # uses at the last step, so envs with random resets compare too)
    auto = AutoReset(env)
    horizon = env.horizon
    actions = _discrete_or_continuous_actions(env, action_key, (horizon,))

    def episode(state, k):
        def body(state, inputs):
            a, sk = inputs
            state, ts = auto.step(sk, state, a, task0)
            return state, (ts.reward, ts.done)
        return jax.lax.scan(body, state, (actions, jax.random.split(k, horizon)))
    episode_rewards = _jit_once(episode)  # compiled once, run for both episodes

    last_step_key = jax.random.split(step_key, horizon)[-1]
    state, _ = auto.reset(jax.random.split(last_step_key)[1], task0)
    state, (first, done1) = episode_rewards(state, step_key)
    _, (second, _) = episode_rewards(state, step_key)
    _assert_compiled_once(episode_rewards, "the auto-reset episode", 2)
    assert bool(jnp.any(done1)), "an episode of horizon steps must end (terminated or truncated)"
    length = int(jnp.argmax(done1)) + 1
    if length == horizon:  # the second episode is comparable only if the first ran full length
        # the first steps only: float rounding of the in-scan reset grows in chaotic (contact) physics
        n = min(horizon, 5)
        np.testing.assert_allclose(np.asarray(first[:n]), np.asarray(second[:n]), rtol=max(1e-4, tolerance),
                                   atol=max(1e-5, tolerance),
                                   err_msg="the episode after an auto-reset differs: task lost?")


def check_learner(learner, env, task_dist, seed: int = 0, eager: bool = True) -> None:
    """Assert the meta-learner contract (small configs only: runs meta_step a few times)."""
    state = learner.init(jax.random.key(seed))
    keys = jax.random.split(jax.random.key(seed + 1), 3)

    step = _jit_once(learner.meta_step)
    s1, m1 = step(state, keys[0])
    s2, _ = step(s1, keys[1])
    _assert_compiled_once(step, "meta_step", 2)
    for name, value in m1.items():
        assert bool(jnp.all(jnp.isfinite(value))), f"metric {name} is not finite: {value}"
    assert int(s1.step) == int(state.step) + 1

    if eager:
        e1, em1 = learner.meta_step(state, keys[0])
        assert_trees_close(e1.params, s1.params, rtol=2e-3, atol=2e-4, what="meta_step: eager vs jit")
        assert_trees_close(em1, m1, rtol=2e-3, atol=2e-4, what="metrics: eager vs jit")

    # lax.scan of meta_step == Python loop of the same body (through the program compiled above)
    scanned, scan_metrics = make_chunk(learner, 2)(state)
    looped = state
    for _ in range(2):
        key, step_key = jax.random.split(looped.key)
        looped, loop_metrics = step(looped._replace(key=key), step_key)
    _assert_compiled_once(step, "meta_step", 4)
    assert_trees_close(scanned.params, looped.params, rtol=2e-3, atol=2e-4, what="scan vs loop")
    assert_trees_close(jax.tree.map(lambda x: x[-1], scan_metrics), loop_metrics, rtol=2e-3, atol=2e-4,
                       what="scan vs loop metrics")

    # vmap(adapt) over tasks == loop over tasks
    tasks = jax.vmap(task_dist.sample)(jax.random.split(keys[2], 2))
    adapt_keys = jax.random.split(keys[2], 2)
    batched = jax.jit(jax.vmap(learner.adapt, in_axes=(None, 0, 0)))(state.params, tasks, adapt_keys)
    for i in range(2):
        single = jax.jit(learner.adapt)(state.params, jax.tree.map(lambda x: x[i], tasks), adapt_keys[i])
        assert_trees_close(jax.tree.map(lambda x: x[i], batched), single, rtol=1e-3, atol=1e-4,
                           what=f"vmap(adapt) vs loop, task {i}")
