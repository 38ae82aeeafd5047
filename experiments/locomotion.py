"""MAML or ProMP on a Brax locomotion family, with PPO oracles and the share of the gap closed.

  python -m experiments.maml_halfcheetah_vel                 # GPU-scale default
  python -m experiments.maml_halfcheetah_vel --learner promp # the ProMP variant
  python -m experiments.maml_halfcheetah_vel --smoke         # a CPU check in a few minutes

Meta-trains on the family (TRPO outer step for MAML; ProMP's clipped multi-step outer step),
evaluates pre- and post-adaptation return (one inner step) on the fixed test tasks, trains one PPO
oracle per test task (all at once, vmapped), and reports the share of the pre-to-oracle gap that
one step closes, ``(post - pre) / (oracle - pre)``, next to MAML's published share. Saves brax HTML
rollouts of test task 0 before and after adaptation. Outputs under ``--out-dir``. The oracles'
result is cached in ``--oracle-cache`` (relative to ``--out-dir``'s parent: by default ``oracles``
beside the run), so the MAML and ProMP runs of a family with the same seed and evaluation
settings train them once.

``--resume`` checks only the settings that shape training, so a finished run can be evaluated
again with other evaluation settings (``--resume --test-tasks 40 --eval-rollouts 20``); that
rewrites the results, summary and renders, never the checkpoints or training metrics.
``--oracle-only`` trains (or reads back) just the oracles of the given settings and prints their
row, e.g. to recompute a finished run's gap share after the PPO trainer changed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import jax
import numpy as np

import metajax
from experiments.common import run_directory_errors_as_exit, write_table
from metajax.config import Config, option, parse_configs
from metajax.envs.brax_env import BACKENDS
from metajax.evaluation import evaluate, evaluate_policies
from metajax.learners import MAMLConfig, ProMPConfig, make_maml, make_promp
from metajax.logs import atomic_write
from metajax.ppo import REVISION as PPO_REVISION, PPOConfig, make_policy, train_ppo
from metajax.rollout import policy_act
from metajax.training import TrainConfig, train, training_seconds

# MAML (Finn et al. 2017, Fig. 5): share of the pre->oracle gap closed by one step
PUBLISHED_SHARE = {"halfcheetah-vel-v1": 0.68, "halfcheetah-dir-v1": 0.70, "ant-dir-v1": 0.95}


@dataclasses.dataclass(frozen=True)
class LocomotionConfig(Config):
    learner: str = option("maml", choices=("maml", "promp"), help="meta-learner")
    backend: str = option("generalized", choices=BACKENDS, help="brax pipeline; spring / positional are "
                          "faster and less accurate (same dt, brax's smaller substeps)")
    meta_batch_size: int = option(40, low=1, help="tasks per meta-iteration")
    rollouts_per_task: int = option(20, low=1, help="episodes per task per batch")
    inner_lr: float = option(0.1, low=0.0, low_open=True, help="inner step size (MAML paper: 0.1)")
    hidden_sizes: tuple = option((100, 100), low=1, help="policy MLP widths")
    test_tasks: int = option(40, low=1, help="held-out test tasks")
    eval_rollouts: int = option(20, low=1, help="rollouts per adaptation step")
    oracle_updates: int = option(500, low=1, help="PPO updates per oracle")
    oracle_envs: int = option(64, low=1, help="PPO parallel envs per oracle")
    oracle_cache: str = option("oracles", help="folder of trained-oracle results shared by runs (MAML "
                               "and ProMP of a family train them once); relative to --out-dir's parent")

    # settings that only shape the evaluation: a finished run resumes with others and is re-evaluated
    NOT_IN_RUN_IDENTITY = ("test_tasks", "eval_rollouts", "oracle_updates", "oracle_envs", "oracle_cache")


def _learner(env, task_dist, cfg: LocomotionConfig):
    common = dict(meta_batch_size=cfg.meta_batch_size, rollouts_per_task=cfg.rollouts_per_task,
                  inner_lr=cfg.inner_lr, hidden_sizes=cfg.hidden_sizes)
    if cfg.learner == "maml":
        return make_maml(env, task_dist, MAMLConfig(**common))
    return make_promp(env, task_dist, ProMPConfig(**common))


def oracle_return(env, family: str, tasks, train_key, eval_key, ppo_cfg: PPOConfig, eval_rollouts: int,
                  cache_dir: str) -> dict:
    """Return of one PPO oracle per task (``tasks`` leaves ``[N, ...]``), trained from ``train_key``
    and evaluated from ``eval_key``: ``{"oracle", "oracle_stderr", "oracle_seconds",
    "oracle_cached"}``. The result is stored in ``cache_dir`` under a name derived from everything
    that shapes it (family, backend, tasks, keys, PPO settings and revision, rollouts, metajax version) and read
    back instead of training again; delete the file to retrain."""
    identity = {"family": family, "backend": getattr(env, "backend", None),
                "tasks": [np.asarray(x).tolist() for x in jax.tree.leaves(tasks)],
                "keys": [np.asarray(jax.random.key_data(k)).tolist() for k in (train_key, eval_key)],
                "ppo": dataclasses.asdict(ppo_cfg), "ppo_revision": PPO_REVISION, "eval_rollouts": eval_rollouts,
                "metajax": metajax.__version__}
    text = json.dumps(identity, sort_keys=True)
    path = os.path.join(cache_dir, f"{family}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json")
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        if stored["identity"] == json.loads(text):
            return {**stored["result"], "oracle_cached": True}
    start = time.perf_counter()
    num = jax.tree.leaves(tasks)[0].shape[0]
    params, _ = jax.jit(jax.vmap(lambda task, k: train_ppo(env, task, k, ppo_cfg)))(
        tasks, jax.random.split(train_key, num))
    oracle = evaluate_policies(env, make_policy(env, ppo_cfg).apply, params, tasks, eval_key, eval_rollouts)
    result = {"oracle": float(oracle.mean[0]), "oracle_stderr": float(oracle.stderr[0]),
              "oracle_seconds": time.perf_counter() - start}
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(path, json.dumps({"identity": json.loads(text), "result": result}))
    return {**result, "oracle_cached": False}


def render_episodes(env, apply, task, key, params_by_path: dict) -> None:
    """Save a brax HTML rollout of one episode on ``task`` for each ``{path: policy params}``
    (``apply(params, obs [1, O])``); one compiled program serves every policy."""
    from brax.io import html

    @jax.jit
    def episode(params, key):
        act = policy_act(apply, params)
        state, ts = env.reset(key, task)

        def body(carry, step_key):
            state, obs = carry
            action, _ = act(step_key, obs[None])
            state, ts = env.step(step_key, state, action[0], task)
            return (state, ts.observation), (state.pipeline, ts.terminated)
        return state.pipeline, jax.lax.scan(body, (state, ts.observation), jax.random.split(key, env.horizon))[1]

    for path, params in params_by_path.items():
        # committed like a jitted output: eager and jitted params would otherwise be two compile keys
        first, (pipelines, terminated) = episode(jax.device_put(params, jax.devices()[0]), key)
        terminated = np.asarray(terminated)
        length = int(np.argmax(terminated)) + 1 if terminated.any() else env.horizon
        frames = [first] + [jax.tree.map(lambda x, i=i: x[i], pipelines) for i in range(length)]
        html.save(path, env.physics(env.sys, task), frames)


def _test_tasks_and_keys(task_dist, cfg: LocomotionConfig, train_cfg: TrainConfig):
    """The fixed test tasks and the 4 evaluation keys (learner, oracle training, oracle evaluation,
    renders) of a run; they depend on the seed and the number of test tasks only."""
    keys = jax.random.split(jax.random.key(train_cfg.seed + 7), 4)
    return task_dist.test_tasks(cfg.test_tasks), keys


def _run_oracles(env, family: str, tasks, keys, cfg: LocomotionConfig, train_cfg: TrainConfig,
                 ppo_cfg: PPOConfig) -> dict:
    cache = os.path.join(os.path.dirname(os.path.abspath(train_cfg.out_dir)), cfg.oracle_cache)  # absolute stays
    return oracle_return(env, family, tasks, keys[1], keys[2], ppo_cfg, cfg.eval_rollouts, cache)


def oracle_row(family: str, cfg: LocomotionConfig, train_cfg: TrainConfig, ppo_cfg: PPOConfig) -> dict:
    """The oracle row of a run's settings without meta-training (``--oracle-only``): the same test
    tasks, keys and cache as :func:`run`, so a finished run's gap share can be recomputed after the
    oracle changes. Reads or writes only the oracle cache, never ``--out-dir``."""
    env, task_dist = metajax.make(family, backend=cfg.backend)
    tasks, keys = _test_tasks_and_keys(task_dist, cfg, train_cfg)
    oracle = _run_oracles(env, family, tasks, keys, cfg, train_cfg, ppo_cfg)
    return {"family": family, "backend": cfg.backend, "seed": train_cfg.seed, "test_tasks": cfg.test_tasks,
            "eval_rollouts": cfg.eval_rollouts, **oracle, "ppo_revision": PPO_REVISION,
            "device": str(jax.devices()[0].device_kind)}


def run(family: str, cfg: LocomotionConfig, train_cfg: TrainConfig, ppo_cfg: PPOConfig, resume=False) -> dict:
    env, task_dist = metajax.make(family, backend=cfg.backend)
    learner = _learner(env, task_dist, cfg)
    state, history = train(learner, train_cfg, {"family": family, "config": cfg, "train": train_cfg},
                           resume=resume)
    train_seconds = training_seconds(history)  # over all sessions of the run
    tasks, keys = _test_tasks_and_keys(task_dist, cfg, train_cfg)
    result = jax.jit(lambda p: evaluate(learner, env, p, tasks, keys[0], 1, cfg.eval_rollouts))(state.params)
    out = train_cfg.out_dir
    oracle = _run_oracles(env, family, tasks, keys, cfg, train_cfg, ppo_cfg)

    pre, post, best = float(result.mean[0]), float(result.mean[1]), oracle["oracle"]
    share = (post - pre) / (best - pre) if best != pre else float("nan")
    row = {"family": family, "learner": cfg.learner, "backend": cfg.backend,
           "pre": pre, "pre_stderr": float(result.stderr[0]),
           "post": post, "post_stderr": float(result.stderr[1]), **oracle, "gap_share": share,
           "published_maml_share": PUBLISHED_SHARE.get(family), "train_seconds": train_seconds,
           "iterations": int(state.step), "device": str(jax.devices()[0].device_kind)}
    write_table(out, "results", [row])
    task0 = jax.tree.map(lambda x: x[0], tasks)
    apply = lambda p, obs: learner.make_policy(state.params, p)(obs)
    render_episodes(env, apply, task0, keys[3], {
        os.path.join(out, "before_adaptation.html"): learner.start_adaptation(state.params),
        os.path.join(out, "after_adaptation.html"): learner.adapt(state.params, task0, keys[3]),
    })
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(row, f, indent=2)
    return row


def main(argv=None, family: str = "halfcheetah-vel-v1"):
    def extra(parser):
        parser.add_argument("--smoke", action="store_true", help="tiny CPU settings")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
        what.add_argument("--oracle-only", action="store_true", help="only train (or read back) the PPO "
                            "oracles of these settings and print their row; no meta-training, --out-dir "
                            "only locates the oracle cache")

    defaults = [LocomotionConfig(), TrainConfig(iterations=300, out_dir=f"runs/{family}")]
    (cfg, train_cfg), args = parse_configs(defaults, argv, __doc__, extra)
    if args.smoke:
        cfg = dataclasses.replace(cfg, meta_batch_size=2, rollouts_per_task=2, hidden_sizes=(16,),
                                  test_tasks=2, eval_rollouts=2, oracle_updates=2, oracle_envs=4)
        train_cfg = dataclasses.replace(train_cfg, iterations=2, chunk_size=1, checkpoint_every=1,
                                        progress=False)
    ppo_cfg = PPOConfig(num_envs=cfg.oracle_envs, rollout_steps=8 if args.smoke else 200,
                        updates=cfg.oracle_updates, minibatches=2 if args.smoke else 8,
                        hidden_sizes=cfg.hidden_sizes)
    if args.oracle_only:
        row = oracle_row(family, cfg, train_cfg, ppo_cfg)
    else:
        with run_directory_errors_as_exit():
            row = run(family, cfg, train_cfg, ppo_cfg, resume=args.resume)
    print(json.dumps(row, indent=2))
    return row


if __name__ == "__main__":
    main()
