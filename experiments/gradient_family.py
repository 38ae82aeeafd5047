"""The gradient-based family on one task family with equal env-step budgets, several seeds at once.

  python -m experiments.gradient_family                      # 5 learners x 3 seeds on point-nav-v1
  python -m experiments.gradient_family --env cartpole-params-v1 --learners maml,reptile
  python -m experiments.gradient_family --smoke --out-dir /tmp/family

Every learner collects 2 batches of ``B`` rollouts per task per meta-iteration (MAML, FO-MAML,
Meta-SGD and ProMP: one inner batch and one post-update batch; Reptile: two inner batches), so equal
iteration counts are equal env-step budgets. The seeds of one learner train together in one compiled
program (``vmap`` over seeds). Evaluation is the library's one protocol (``metajax.evaluation``) on
the fixed test tasks; mean +- s.e. over seeds x tasks. Writes ``results.{json,csv}``, ``curves.json``,
``returns_vs_env_steps.png`` and ``adaptation.png`` under ``--out-dir``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import metajax
from experiments.common import EvalConfig, plot_adaptation, save_figure, write_table
from metajax.config import Config, option, parse_configs
from metajax.evaluation import evaluate, evaluate_oracle, summarize
from metajax.learners import (
    MAMLConfig, MetaSGDConfig, ProMPConfig, ReptileConfig, make_maml, make_meta_sgd, make_promp,
    make_reptile,
)
from metajax.training import train_seeds

LEARNERS = ("maml", "fo-maml", "meta-sgd", "promp", "reptile")


@dataclasses.dataclass(frozen=True)
class FamilyConfig(Config):
    env: str = option("point-nav-v1", choices=("point-nav-v1", "cartpole-params-v1"), help="task family")
    learners: str = option(",".join(LEARNERS), help=f"comma-separated subset of {', '.join(LEARNERS)}")
    seeds: int = option(3, low=1, help="seeds per learner, trained at once (vmap)")
    iterations: int = option(40, low=1, help="meta-iterations per learner (equal env-step budgets)")
    meta_batch_size: int = option(20, low=1, help="tasks per meta-iteration")
    rollouts_per_task: int = option(20, low=1, help="episodes per task per batch")
    inner_lr: float = option(0.5, low=0.0, low_open=True, help="inner step size of every learner")
    hidden_sizes: tuple = option((100, 100), low=1, help="policy MLP widths")
    chunk_size: int = option(5, low=1, help="meta-iterations per compiled chunk")
    out_dir: str = option("runs/gradient_family", help="where results go")
    progress: bool = option(True, help="show progress bars")

    def __post_init__(self):
        super().__post_init__()
        unknown = [n for n in self.learner_names() if n not in LEARNERS]
        if unknown or not self.learner_names():
            raise ValueError(f"FamilyConfig.learners must be a comma-separated subset of "
                             f"{', '.join(LEARNERS)}; got {self.learners!r}")

    def learner_names(self) -> list[str]:
        return [n.strip() for n in self.learners.split(",") if n.strip()]


def build(name: str, env, task_dist, cfg: FamilyConfig):
    """The learner ``name`` with the shared batch sizes, inner step size and policy."""
    common = dict(meta_batch_size=cfg.meta_batch_size, rollouts_per_task=cfg.rollouts_per_task,
                  inner_lr=cfg.inner_lr, hidden_sizes=cfg.hidden_sizes)
    if name in ("maml", "fo-maml"):
        return make_maml(env, task_dist, MAMLConfig(**common, first_order=name == "fo-maml"))
    if name == "meta-sgd":
        return make_meta_sgd(env, task_dist, MetaSGDConfig(**common))
    if name == "promp":
        return make_promp(env, task_dist, ProMPConfig(**common))
    return make_reptile(env, task_dist, ReptileConfig(**common, inner_steps=2))


def run(cfg: FamilyConfig, eval_cfg: EvalConfig) -> dict:
    env, task_dist = metajax.make(cfg.env)
    tasks = task_dist.test_tasks(eval_cfg.test_tasks)
    steps_per_iteration = 2 * cfg.meta_batch_size * cfg.rollouts_per_task * env.horizon
    seeds = list(range(cfg.seeds))
    eval_keys = jax.random.split(jax.random.key(eval_cfg.eval_seed), cfg.seeds)

    def evaluate_seeds(learner, params):
        per_seed = jax.jit(jax.vmap(lambda p, k: evaluate(
            learner, env, p, tasks, k, eval_cfg.adaptation_steps, eval_cfg.eval_rollouts,
            eval_cfg.later_steps_lr_scale).per_task))(params, eval_keys)
        return summarize(per_seed.reshape(-1, per_seed.shape[-1]))  # over seeds x tasks

    results, curves = {}, {}
    for name in cfg.learner_names():
        learner = build(name, env, task_dist, cfg)
        start = time.perf_counter()
        states, metrics = train_seeds(learner, seeds, cfg.iterations, cfg.chunk_size, cfg.progress)
        seconds = time.perf_counter() - start
        results[name] = (evaluate_seeds(learner, states.params), seconds)
        curves[name] = {k: np.asarray(v).tolist() for k, v in metrics.items() if k.endswith("return")}
        print(f"{name}: {seconds:.0f} s, 1-step return {float(results[name][0].mean[1]):.2f}", flush=True)
    maml = build("maml", env, task_dist, cfg)
    init_params = jax.vmap(maml.init)(jnp.stack([jax.random.key(1000 + s) for s in seeds])).params
    random_init = evaluate_seeds(maml, init_params)
    oracle = None
    if hasattr(env, "oracle_action"):
        oracle = evaluate_oracle(env, tasks, jax.random.key(eval_cfg.eval_seed + 1),
                                 rollouts_per_step=eval_cfg.eval_rollouts)

    rows = []
    for name, (result, seconds) in [*results.items(), ("random init", (random_init, 0.0))]:
        row = {"learner": name, "seeds": cfg.seeds,
               "env_steps": steps_per_iteration * cfg.iterations if name != "random init" else 0,
               "train_seconds": seconds}
        for k in range(eval_cfg.adaptation_steps + 1):
            row[f"return_{k}"] = float(result.mean[k])
            row[f"stderr_{k}"] = float(result.stderr[k])
        rows.append(row)
    out = cfg.out_dir
    write_table(out, "results", rows)
    with open(os.path.join(out, "curves.json"), "w") as f:
        json.dump({"steps_per_iteration": steps_per_iteration, "curves": curves}, f)
    horizontal = {} if oracle is None else {"oracle": float(oracle.mean[0])}
    plot_adaptation(os.path.join(out, "adaptation.png"),
                    {r["learner"]: ([r[f"return_{k}"] for k in range(eval_cfg.adaptation_steps + 1)],
                                    [r[f"stderr_{k}"] for k in range(eval_cfg.adaptation_steps + 1)])
                     for r in rows},
                    f"{cfg.env}: {cfg.seeds} seeds x {eval_cfg.test_tasks} test tasks", horizontal)
    plot_curves(os.path.join(out, "returns_vs_env_steps.png"), curves, steps_per_iteration, cfg.env)
    return {"rows": rows, "oracle": None if oracle is None else float(oracle.mean[0]),
            "device": str(jax.devices()[0].device_kind)}


def plot_curves(path: str, curves: dict, steps_per_iteration: int, title: str) -> None:
    """Post-adaptation training return (mean +- s.e. over seeds) against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, metrics in curves.items():
        post = np.asarray(metrics["post_return"])  # [seeds, iterations]
        steps = steps_per_iteration * np.arange(1, post.shape[1] + 1)
        mean = post.mean(0)
        err = post.std(0, ddof=1) / np.sqrt(post.shape[0]) if post.shape[0] > 1 else 0 * mean
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - err, mean + err, alpha=0.2)
    save_figure(fig, ax, path, "env steps", "return after one adaptation step (training tasks)", title)


def main(argv=None):
    def extra(parser):
        parser.add_argument("--smoke", action="store_true", help="tiny settings for a quick check")

    (cfg, eval_cfg), args = parse_configs([FamilyConfig(), EvalConfig()], argv, __doc__, extra)
    if args.smoke:
        cfg = dataclasses.replace(cfg, seeds=2, iterations=2, meta_batch_size=2, rollouts_per_task=2,
                                  hidden_sizes=(16,), chunk_size=1, progress=False)
        eval_cfg = dataclasses.replace(eval_cfg, test_tasks=4, eval_rollouts=2)
    summary = run(cfg, eval_cfg)
    steps = eval_cfg.adaptation_steps + 1
    print(f"\n{cfg.env}: {cfg.seeds} seeds, {cfg.iterations} meta-iterations each "
          f"({summary['rows'][0]['env_steps']} env steps per seed) on {summary['device']}")
    print(f"{'learner':<12}" + "".join(f"{f'{k} steps':>17}" for k in range(steps)) + f"{'train s':>9}")
    for r in summary["rows"]:
        cells = "".join(f"{r[f'return_{k}']:>9.2f} ± {r[f'stderr_{k}']:<5.2f}" for k in range(steps))
        print(f"{r['learner']:<12}{cells}{r['train_seconds']:>9.0f}")
    if summary["oracle"] is not None:
        print(f"oracle: {summary['oracle']:.2f}")
    return summary


if __name__ == "__main__":
    main()
