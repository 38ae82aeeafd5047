"""MAML or ProMP on a Brax locomotion family, with PPO oracles and the share of the gap closed.

  python -m experiments.maml_halfcheetah_vel                 # GPU-scale default
  python -m experiments.maml_halfcheetah_vel --learner promp # the ProMP variant
  python -m experiments.maml_halfcheetah_vel --smoke         # a CPU check in a few minutes

Meta-trains on the family (TRPO outer step for MAML; ProMP's clipped multi-step outer step),
evaluates pre- and post-adaptation return (one inner step) on the fixed test tasks, trains one PPO
oracle per test task (all at once, vmapped), and reports the share of the pre-to-oracle gap that
one step closes, ``(post - pre) / (oracle - pre)``, next to MAML's published share. Saves brax HTML
rollouts of test task 0 before and after adaptation. Outputs under ``--out-dir``.

``--resume`` checks only the settings that shape training, so a finished run can be evaluated
again with other evaluation settings (``--resume --test-tasks 40 --eval-rollouts 20``); that
rewrites the results, summary and renders, never the checkpoints or training metrics.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np

import metajax
from experiments.common import write_table
from metajax.config import Config, option, parse_configs
from metajax.evaluation import evaluate, evaluate_policies
from metajax.learners import MAMLConfig, ProMPConfig, make_maml, make_promp
from metajax.ppo import PPOConfig, make_policy, train_ppo
from metajax.rollout import policy_act
from metajax.training import TrainConfig, train, training_seconds

# MAML (Finn et al. 2017, Fig. 5): share of the pre->oracle gap closed by one step
PUBLISHED_SHARE = {"halfcheetah-vel-v1": 0.68, "halfcheetah-dir-v1": 0.70, "ant-dir-v1": 0.95}


@dataclasses.dataclass(frozen=True)
class LocomotionConfig(Config):
    learner: str = option("maml", choices=("maml", "promp"), help="meta-learner")
    meta_batch_size: int = option(40, low=1, help="tasks per meta-iteration")
    rollouts_per_task: int = option(20, low=1, help="episodes per task per batch")
    inner_lr: float = option(0.1, low=0.0, low_open=True, help="inner step size (MAML paper: 0.1)")
    hidden_sizes: tuple = option((100, 100), low=1, help="policy MLP widths")
    test_tasks: int = option(40, low=1, help="held-out test tasks")
    eval_rollouts: int = option(20, low=1, help="rollouts per adaptation step")
    oracle_updates: int = option(500, low=1, help="PPO updates per oracle")
    oracle_envs: int = option(64, low=1, help="PPO parallel envs per oracle")

    # settings that only shape the evaluation: a finished run resumes with others and is re-evaluated
    NOT_IN_RUN_IDENTITY = ("test_tasks", "eval_rollouts", "oracle_updates", "oracle_envs")


def _learner(env, task_dist, cfg: LocomotionConfig):
    common = dict(meta_batch_size=cfg.meta_batch_size, rollouts_per_task=cfg.rollouts_per_task,
                  inner_lr=cfg.inner_lr, hidden_sizes=cfg.hidden_sizes)
    if cfg.learner == "maml":
        return make_maml(env, task_dist, MAMLConfig(**common))
    return make_promp(env, task_dist, ProMPConfig(**common))


def render_episode(env, act, task, key, path: str) -> None:
    """Save a brax HTML rollout of one episode (``act(key, obs [1, O])``) on ``task``."""
    from brax.io import html

    def episode(key):
        state, ts = env.reset(key, task)

        def body(carry, step_key):
            state, obs = carry
            action, _ = act(step_key, obs[None])
            state, ts = env.step(step_key, state, action[0], task)
            return (state, ts.observation), (state.pipeline, ts.terminated)
        return state.pipeline, jax.lax.scan(body, (state, ts.observation), jax.random.split(key, env.horizon))[1]

    first, (pipelines, terminated) = jax.jit(episode)(key)
    terminated = np.asarray(terminated)
    length = int(np.argmax(terminated)) + 1 if terminated.any() else env.horizon
    frames = [first] + [jax.tree.map(lambda x, i=i: x[i], pipelines) for i in range(length)]
    html.save(path, env.physics(env.sys, task), frames)


def run(family: str, cfg: LocomotionConfig, train_cfg: TrainConfig, ppo_cfg: PPOConfig, resume=False) -> dict:
    env, task_dist = metajax.make(family)
    learner = _learner(env, task_dist, cfg)
    state, history = train(learner, train_cfg, {"family": family, "config": cfg, "train": train_cfg},
                           resume=resume)
    train_seconds = training_seconds(history)  # over all sessions of the run
    tasks = task_dist.test_tasks(cfg.test_tasks)
    keys = jax.random.split(jax.random.key(train_cfg.seed + 7), 4)
    result = jax.jit(lambda p: evaluate(learner, env, p, tasks, keys[0], 1, cfg.eval_rollouts))(state.params)

    start = time.perf_counter()
    num = cfg.test_tasks
    oracle_params, _ = jax.jit(jax.vmap(lambda task, key: train_ppo(env, task, key, ppo_cfg)))(
        tasks, jax.random.split(keys[1], num))
    oracle = evaluate_policies(env, make_policy(env, ppo_cfg).apply, oracle_params, tasks, keys[2],
                               cfg.eval_rollouts)
    oracle_seconds = time.perf_counter() - start

    pre, post, best = float(result.mean[0]), float(result.mean[1]), float(oracle.mean[0])
    share = (post - pre) / (best - pre) if best != pre else float("nan")
    out = train_cfg.out_dir
    row = {"family": family, "learner": cfg.learner, "pre": pre, "pre_stderr": float(result.stderr[0]),
           "post": post, "post_stderr": float(result.stderr[1]), "oracle": best,
           "oracle_stderr": float(oracle.stderr[0]), "gap_share": share,
           "published_maml_share": PUBLISHED_SHARE.get(family), "train_seconds": train_seconds,
           "oracle_seconds": oracle_seconds, "iterations": int(state.step),
           "device": str(jax.devices()[0].device_kind)}
    write_table(out, "results", [row])
    task0 = jax.tree.map(lambda x: x[0], tasks)
    apply = lambda p, obs: learner.make_policy(state.params, p)(obs)
    before = learner.start_adaptation(state.params)
    adapted = learner.adapt(state.params, task0, keys[3])
    render_episode(env, policy_act(apply, before), task0, keys[3], os.path.join(out, "before_adaptation.html"))
    render_episode(env, policy_act(apply, adapted), task0, keys[3], os.path.join(out, "after_adaptation.html"))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(row, f, indent=2)
    return row


def main(argv=None, family: str = "halfcheetah-vel-v1"):
    def extra(parser):
        parser.add_argument("--smoke", action="store_true", help="tiny CPU settings")
        parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")

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
    row = run(family, cfg, train_cfg, ppo_cfg, resume=args.resume)
    print(json.dumps(row, indent=2))
    return row


if __name__ == "__main__":
    main()
