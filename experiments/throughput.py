"""Meta-training throughput of MAML on ``point-nav-v1`` (env steps per second).

  python -m experiments.throughput              # the full table; its 640-task row takes 6-12 min on 2 cores
  python -m experiments.throughput --tasks 20 --large-tasks --learners   # the 20-task rows only

Workload per meta-iteration: M tasks x 20 trajectories x 100 steps, pre- and post-update
(M = 20 gives 80k env steps). Rows: MAML with the TRPO outer step at each M (its passes through the
inner update — data collection, Gauss-Newton Fisher products, gradient, line search — over blocks
of ``bN`` tasks, ``MAMLConfig.fisher_block_tasks``; on a CPU blocks of 2 by default, and at the
first M also in one pass over all tasks), MAML with the Adam outer step,
MAML-TRPO with the authors' finite-difference Fisher products (the navigation
experiment's default; exact Gauss-Newton products elsewhere), the raw rollout (policy sampling +
env stepping, no learning) at the same batch, and each learner of the gradient family
(``--learners``; Reptile's two inner batches make the same 80k steps) at the first M.
At M = 640 the second-order Fisher-vector products over all tasks at once need more than 24 GiB,
so off a CPU the ``--large-tasks`` sizes compute them over chunks of 40 tasks in turn, each
linearised afresh per product (``fisher_task_chunks``; labelled ``MAML-TRPO/<chunks>``); on a CPU
the default blocks of 2 tasks keep one stored linearisation within 10 GiB at M = 640.
``--locomotion-scaling 20 200 2000`` times MAML-TRPO on ``halfcheetah-vel-v1`` at each number of
tasks (the GPU scaling sweep), with the Fisher product chunked above ``--fisher-chunk-tasks``.
``--backend-rates FAMILY TASKS ROLLOUTS`` times the raw env step of a brax family on each backend
(to choose one per device).
``--rl2 ENV EPISODES TRIALS`` adds RL^2 (GRU and transformer cores): PPO meta-training env steps/s
on trials of EPISODES episodes, TRIALS trials per iteration, next to acting alone (the trial rollouts
without the PPO update).
The breakdown splits a TRPO meta-iteration into data collection (rollouts + inner update) and the
outer step. Figures are medians over ``--repeats`` timed calls after one compile call; the rows of one
number of tasks are timed in turn within each repeat, so that their ratios hold on a noisy host.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp

import metajax
from experiments.gradient_family import LEARNERS, FamilyConfig, build
from metajax.envs.brax_env import BACKENDS
from metajax.envs.registry import LOCOMOTION_FAMILIES, PHYSICS_TASK_FAMILIES
from metajax.learners.inner_loop import make_inner_loop
from metajax.learners.maml import MAMLConfig, fisher_block_tasks, make_maml
from metajax.learners.rl2 import RL2Config, make_rl2
from metajax.rollout import policy_act, rollout


def _time(fn, *args, repeats: int):
    """(compile seconds, median seconds per call) of a jitted ``fn``; each call gets a new key."""
    return _time_interleaved([(fn, args)], repeats)[0]


def _time_interleaved(programs, repeats: int) -> list[tuple[float, float]]:
    """``(compile s, median s per call)`` of each jitted ``(fn, args)``: all are compiled and warmed
    up first, then timed in turn within each repeat, so a host that slows down for a while slows
    every row alike and the rows' ratios hold. Each call gets a new key."""
    compiled, compile_s = [], []
    for fn, args in programs:
        start = time.perf_counter()
        compiled.append(jax.jit(fn).lower(*args, jax.random.key(0)).compile())
        compile_s.append(time.perf_counter() - start)
        jax.block_until_ready(compiled[-1](*args, jax.random.key(1)))  # warm-up
    times = [[] for _ in programs]
    for i in range(repeats):
        for program, (_, args), row_times in zip(compiled, programs, times):
            start = time.perf_counter()
            jax.block_until_ready(program(*args, jax.random.key(2 + i)))
            row_times.append(time.perf_counter() - start)
    return [(c, statistics.median(t)) for c, t in zip(compile_s, times)]


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The device's float32 ``[size, size] @ [size, size]`` rate in GFLOP/s (median of ``repeats``):
    a yardstick that tells a slower host from a slower program when rows are compared across days."""
    a = jnp.ones((size, size), jnp.float32)
    _, seconds = _time(lambda x, key: x @ x, a, repeats=repeats)
    return 2 * size**3 / seconds / 1e9


def measure(tasks: int, outer: str, repeats: int, **options) -> dict:
    """One row timed on its own (``workload``'s options)."""
    return measure_together([workload(tasks, outer, **options)], repeats)[0]


def measure_together(workloads: list[dict], repeats: int) -> list[dict]:
    """The rows of ``workloads`` (from ``workload``), timed interleaved (``_time_interleaved``)."""
    timings = _time_interleaved([(w["fn"], w["args"]) for w in workloads], repeats)
    return [{"workload": w["workload"], "tasks": w["tasks"], "env_steps": w["env_steps"],
             "seconds": seconds, "steps_per_s": w["env_steps"] / seconds, "compile_s": compile_s}
            for w, (compile_s, seconds) in zip(workloads, timings)]


def workload(tasks: int, outer: str, part: str = "meta_step", chunks: int = 1,
             learner_name: str | None = None, fisher_product: str = "gauss_newton", block: int = 0) -> dict:
    """One row's program: ``{"workload", "tasks", "env_steps", "fn", "args"}``. ``learner_name`` (a
    gradient_family learner) replaces MAML with ``outer``; ``block`` sets ``fisher_block_tasks``
    (0: the default)."""
    env, task_dist = metajax.make("point-nav-v1")
    cfg = MAMLConfig(meta_batch_size=tasks, outer_optimizer=outer, fisher_task_chunks=chunks,
                     fisher_product=fisher_product, fisher_block_tasks=block)
    if learner_name is None:
        learner = make_maml(env, task_dist, cfg)
    else:  # every family learner collects 2 batches per task per iteration, as MAML does
        learner = build(learner_name, env, task_dist, FamilyConfig(meta_batch_size=tasks))
    state = learner.init(jax.random.key(0))
    steps_per_rollout = tasks * cfg.rollouts_per_task * env.horizon
    if part == "meta_step":
        fn, env_steps = (lambda s, k: learner.meta_step(s, k)), steps_per_rollout * (cfg.inner_steps + 1)
        args = (state,)
    elif part == "collect":
        loop = make_inner_loop(env, task_dist, cfg)
        fn = lambda params, key: loop.collect(params, key, fisher_block_tasks(cfg))  # noqa: E731
        env_steps = steps_per_rollout * (cfg.inner_steps + 1)
        args = (state.params,)
    elif part == "rollout":
        def fn(params, key):
            goals = jax.vmap(task_dist.sample)(jax.random.split(key, tasks))
            act = policy_act(lambda p, obs: learner.make_policy(p)(obs), params)
            keys = jax.random.split(key, tasks)
            one = lambda task, k: rollout(env, act, task, k, cfg.rollouts_per_task).reward.sum()
            return jnp.sum(jax.vmap(one)(goals, keys))
        env_steps, args = steps_per_rollout, (state.params,)
    else:
        raise ValueError(f"part must be one of meta_step, collect, rollout; got {part!r}")
    name = part if part != "meta_step" else f"MAML-{outer.upper()}" + (f"/{chunks}" if chunks > 1 else "")
    if part == "meta_step" and chunks == 1:
        name += f" b{fisher_block_tasks(cfg) or tasks}"
    name = learner_name or name + (" (FD Fisher)" if fisher_product == "finite_difference" else "")
    return {"workload": name, "tasks": tasks, "env_steps": env_steps, "fn": fn, "args": args}


def raw_env_seconds(env, task_dist, tasks: int, rollouts: int, repeats: int) -> tuple[float, float]:
    """(compile s, median s) of ``tasks x rollouts`` full-horizon episodes of ``env`` under random
    actions, vmapped over sampled tasks: the simulator's own speed, no policy."""
    def raw(dummy, key):
        batch = jax.vmap(task_dist.sample)(jax.random.split(key, tasks))

        def one(task, k):
            def act(ak, obs):
                return jax.random.uniform(ak, (obs.shape[0], env.action_size), minval=-1, maxval=1), jnp.zeros(obs.shape[0])
            return rollout(env, act, task, k, rollouts).reward.sum()
        return dummy + jnp.sum(jax.vmap(one)(batch, jax.random.split(key, tasks)))
    return _time(raw, jnp.zeros(()), repeats=repeats)


def measure_backends(family: str, tasks: int, rollouts: int, repeats: int) -> list[dict]:
    """Raw env steps/s of ``family`` on each brax pipeline (``metajax.make(family, backend)``: the
    same dt per env step, brax's smaller substeps on spring / positional), for choosing one per
    device. A diagnostic row runs ``generalized`` with its constraint solver's line search cut to 4
    steps: that changes the physics, and shows how much of the time the loop takes."""
    env, task_dist = metajax.make(family)
    variants = [(env.backend, env)]
    if env.backend == "generalized":
        variants.append(("generalized, maxls 4", dataclasses.replace(env, sys=env.sys.replace(solver_maxls=4))))
    for backend in BACKENDS:
        if backend != env.backend:
            other = metajax.make(family, backend=backend)[0]
            variants.append((f"{backend}, {other.n_frames}x{float(other.sys.opt.timestep):g}", other))
    steps = tasks * rollouts * env.horizon
    rows = []
    for label, variant in variants:
        compile_s, seconds = raw_env_seconds(variant, task_dist, tasks, rollouts, repeats)
        rows.append({"family": family, "backend": label, "envs": tasks * rollouts, "seconds": seconds,
                     "steps_per_s": steps / seconds, "compile_s": compile_s})
    return rows


def measure_locomotion(tasks: int, rollouts: int, repeats: int, family: str = "halfcheetah-vel-v1",
                       chunk_tasks: int = 0):
    """MAML-TRPO meta-training env-steps/s on a brax family vs the raw vmapped env step at the same
    batch (random actions, no policy): the ratio is the share of simulator speed training keeps.
    With ``chunk_tasks`` > 0 the Fisher product runs over chunks of that many tasks (less memory)."""
    chunked = 0 < chunk_tasks < tasks
    if chunked and tasks % chunk_tasks:
        raise ValueError(f"chunk_tasks={chunk_tasks} must divide tasks={tasks}")
    chunks = tasks // chunk_tasks if chunked else 1
    env, task_dist = metajax.make(family)
    cfg = MAMLConfig(meta_batch_size=tasks, rollouts_per_task=rollouts, inner_lr=0.1,
                     fisher_task_chunks=chunks)
    learner = make_maml(env, task_dist, cfg)
    state = learner.init(jax.random.key(0))
    steps = tasks * rollouts * env.horizon
    compile_s, meta_s = _time(lambda s, k: learner.meta_step(s, k), state, repeats=repeats)
    _, raw_s = raw_env_seconds(env, task_dist, tasks, rollouts, repeats)
    meta_rate, raw_rate = 2 * steps / meta_s, steps / raw_s
    return {"family": family, "tasks": tasks, "rollouts": rollouts, "fisher_chunks": chunks,
            "meta_env_steps": 2 * steps, "meta_seconds": meta_s, "meta_steps_per_s": meta_rate,
            "raw_steps_per_s": raw_rate, "ratio": meta_rate / raw_rate, "compile_s": compile_s}


def measure_rl2(family: str, episodes: int, trials: int, core: str, repeats: int) -> list[dict]:
    """RL^2 rows: the PPO meta-iteration and acting alone, at ``trials`` trials of ``episodes`` episodes."""
    env, task_dist = metajax.make(family)
    learner = make_rl2(env, task_dist, RL2Config(core=core, episodes_per_trial=episodes,
                                                 trials_per_iteration=trials))
    state = learner.init(jax.random.key(0))
    steps = trials * episodes * env.horizon

    def act_only(params, key):
        batch = jax.vmap(task_dist.sample)(jax.random.split(key, trials))
        data, _ = jax.vmap(learner.run_trial, in_axes=(None, 0, 0))(params, batch, jax.random.split(key, trials))
        return jnp.sum(data.reward)

    rows = []
    for part, fn, arg in (("meta_step", learner.meta_step, state), ("act", act_only, state.params)):
        compile_s, seconds = _time(fn, arg, repeats=repeats)
        rows.append({"workload": f"RL2-{core}/{part}", "tasks": trials, "env_steps": steps, "seconds": seconds,
                     "steps_per_s": steps / seconds, "compile_s": compile_s})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="*", default=[20, 40, 160],
                        help="point-nav sizes; with none (and --large-tasks none) only the other rows run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--learners", nargs="*", default=list(LEARNERS), choices=LEARNERS,
                        help="gradient-family learners timed at the first --tasks size")
    parser.add_argument("--large-tasks", type=int, nargs="*", default=[640],
                        help="sizes timed with the Fisher product chunked by 40 tasks off a CPU "
                        "(less memory); on a CPU with the default blocks")
    parser.add_argument("--locomotion", type=int, nargs=2, metavar=("TASKS", "ROLLOUTS"), default=None,
                        help="also time MAML on halfcheetah-vel-v1 against the raw env step")
    parser.add_argument("--locomotion-scaling", type=int, nargs="+", default=None, metavar="TASKS",
                        help="MAML-TRPO iteration time on halfcheetah-vel-v1 at each number of tasks "
                        "(e.g. 20 200 2000 on a GPU), --locomotion-rollouts rollouts per task")
    parser.add_argument("--locomotion-rollouts", type=int, default=20)
    parser.add_argument("--fisher-chunk-tasks", type=int, default=200,
                        help="with --locomotion-scaling: tasks per Fisher-product chunk above this size")
    parser.add_argument("--backend-rates", nargs=3, metavar=("FAMILY", "TASKS", "ROLLOUTS"), default=None,
                        help="raw env steps/s of a brax FAMILY on each backend at TASKS x ROLLOUTS envs")
    parser.add_argument("--rl2", nargs=3, metavar=("ENV", "EPISODES", "TRIALS"), default=None,
                        help="also time RL^2 (both cores) on ENV with trials of EPISODES episodes")
    parser.add_argument("--rl2-only", action="store_true", help="with --rl2: skip the MAML and family rows")
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.tasks + args.large_tasks, default=1) < 1:
        parser.error("--repeats, --tasks and --large-tasks must be positive")
    scaling = args.locomotion_scaling or []
    if min(scaling + [args.locomotion_rollouts, args.fisher_chunk_tasks]) < 1:
        parser.error("--locomotion-scaling, --locomotion-rollouts and --fisher-chunk-tasks must be positive")
    for tasks in scaling:
        if tasks > args.fisher_chunk_tasks and tasks % args.fisher_chunk_tasks:
            parser.error(f"--fisher-chunk-tasks {args.fisher_chunk_tasks} must divide every "
                         f"--locomotion-scaling size above it, got {tasks}")
    if args.rl2 and (args.rl2[0] not in metajax.registered_names() or not all(v.isdigit() and int(v) > 0
                                                                             for v in args.rl2[1:])):
        parser.error(f"--rl2 needs a registered env ({', '.join(metajax.registered_names())}) and two "
                     f"positive ints, got {args.rl2}")
    if args.backend_rates and (args.backend_rates[0] not in LOCOMOTION_FAMILIES
                               or args.backend_rates[0] in PHYSICS_TASK_FAMILIES or not all(
            v.isdigit() and int(v) > 0 for v in args.backend_rates[1:])):
        reward_defined = [f for f in LOCOMOTION_FAMILIES if f not in PHYSICS_TASK_FAMILIES]
        parser.error(f"--backend-rates needs a reward-defined brax family ({', '.join(reward_defined)}) "
                     f"and two positive ints, got {args.backend_rates}")
    if args.locomotion:
        r = measure_locomotion(*args.locomotion, args.repeats)
        print(f"halfcheetah-vel-v1 at {r['tasks']} tasks x {r['rollouts']} rollouts x 200 steps: "
              f"meta-training {r['meta_steps_per_s']:.0f} env steps/s, raw env {r['raw_steps_per_s']:.0f} "
              f"steps/s, ratio {r['ratio']:.2f} (compile {r['compile_s']:.0f} s)")
    device = jax.devices()[0]
    print(f"device: {device.platform} / {device.device_kind}; jax {jax.__version__}; "
          f"float32 matmul (2048^2) {matmul_gflops():.0f} GFLOP/s")
    if args.backend_rates:
        family, tasks, rollouts = args.backend_rates[0], int(args.backend_rates[1]), int(args.backend_rates[2])
        print(f"\n{family}, raw env steps/s at {tasks} tasks x {rollouts} envs, random actions")
        print(f"{'backend':<22} {'envs':>7} {'s/batch':>8} {'steps/s':>10} {'compile s':>10}")
        for r in measure_backends(family, tasks, rollouts, args.repeats):
            print(f"{r['backend']:<22} {r['envs']:>7} {r['seconds']:>8.3f} {r['steps_per_s']:>10.0f} "
                  f"{r['compile_s']:>10.1f}", flush=True)
    if scaling:
        print(f"\nhalfcheetah-vel-v1, {args.locomotion_rollouts} full-horizon rollouts per task, "
              "pre- and post-update batches")
        print(f"{'tasks':>6} {'chunks':>6} {'env steps':>10} {'s/iter':>8} {'steps/s':>10} "
              f"{'raw ratio':>9} {'compile s':>10}")
    for tasks in scaling:
        r = measure_locomotion(tasks, args.locomotion_rollouts, args.repeats,
                               chunk_tasks=args.fisher_chunk_tasks)
        print(f"{tasks:>6} {r['fisher_chunks']:>6} {r['meta_env_steps']:>10} "
              f"{r['meta_seconds']:>8.2f} {r['meta_steps_per_s']:>10.0f} {r['ratio']:>9.2f} "
              f"{r['compile_s']:>10.1f}", flush=True)
    jobs = [dict(tasks=m, outer="trpo", part=part) for m in args.tasks
            for part in ("meta_step", "rollout")]
    on_cpu = jax.default_backend() == "cpu"  # a CPU takes the blocked products; elsewhere chunks of 40
    jobs += [dict(tasks=m, outer="trpo", part=part, chunks=1 if on_cpu else max(1, m // 40))
             for m in args.large_tasks for part in ("meta_step", "rollout")]
    if args.tasks:  # the rows at the first size
        first = args.tasks[0]
        if 0 < fisher_block_tasks(MAMLConfig(meta_batch_size=first)) < first:  # blocks: also one pass
            jobs.append(dict(tasks=first, outer="trpo", block=first))
        jobs.append(dict(tasks=first, outer="adam"))
        # the navigation experiment's default: the MAML authors' finite-difference Fisher products
        jobs.append(dict(tasks=first, outer="trpo", fisher_product="finite_difference"))
        jobs += [dict(tasks=first, outer="trpo", learner_name=name) for name in args.learners]
        if not args.no_breakdown:
            jobs.append(dict(tasks=first, outer="trpo", part="collect"))
    if jobs or args.rl2:
        print(f"\n{'workload':<26} {'tasks':>6} {'env steps':>10} {'s/iter':>8} {'steps/s':>10} {'compile s':>10}")
    rows = []

    def show(r):
        rows.append(r)
        print(f"{r['workload']:<26} {r['tasks']:>6} {r['env_steps']:>10} {r['seconds']:>8.3f} "
              f"{r['steps_per_s']:>10.0f} {r['compile_s']:>10.1f}", flush=True)

    if args.rl2:
        for core in ("gru", "transformer"):
            for r in measure_rl2(args.rl2[0], int(args.rl2[1]), int(args.rl2[2]), core, args.repeats):
                show(r)
    sizes = [] if args.rl2 and args.rl2_only else list(dict.fromkeys(job["tasks"] for job in jobs))
    for tasks in sizes:  # the rows of one size are timed interleaved, so their ratios hold
        group = [workload(**job) for job in jobs if job["tasks"] == tasks]
        for r in measure_together(group, args.repeats):
            show(r)
    return rows


if __name__ == "__main__":
    main()
