"""Shared driver of the RL^2 experiments: train one RL^2 cell, evaluate it on the fixed test tasks."""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np

from experiments.common import write_table
from metajax.config import Config, option
from metajax.evaluation import evaluate_trials, summarize
from metajax.learners.rl2 import RL2Config, make_rl2
from metajax.training import train_seeds

CORES = ("gru", "transformer")


@dataclasses.dataclass(frozen=True)
class TableConfig(Config):
    """What an RL^2 table experiment runs; RL2Config's own ``core``/``episodes_per_trial`` are set per cell."""

    cores: str = option(",".join(CORES), help=f"comma-separated subset of {', '.join(CORES)}")
    iterations: int = option(2000, low=1, help="PPO iterations per cell")
    test_tasks: int = option(1000, low=2, help="held-out test tasks (one trial each)")
    seed: int = option(0, low=0, help="training seed")
    eval_seed: int = option(12345, low=0, help="PRNG seed of the evaluation trials")
    chunk_size: int = option(50, low=1, help="iterations per compiled chunk")
    progress: bool = option(True, help="show progress bars")

    def __post_init__(self):
        super().__post_init__()
        if not self.core_names() or any(c not in CORES for c in self.core_names()):
            raise ValueError(f"TableConfig.cores must be a comma-separated subset of {', '.join(CORES)}; "
                             f"got {self.cores!r}")

    def core_names(self) -> list[str]:
        return [c.strip() for c in self.cores.split(",") if c.strip()]


def add_smoke_flag(parser) -> None:
    parser.add_argument("--smoke", action="store_true", help="tiny settings for a quick CPU check")


def parse_list(text: str, name: str, allowed) -> list[int]:
    """``"5,10" -> [5, 10]``; a clear error naming ``name`` and the allowed values otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v not in allowed for v in values):
        raise ValueError(f"{name} must be a comma-separated subset of {', '.join(map(str, allowed))}; got {text!r}")
    return values


def train_rl2_cell(env, family, rl2: RL2Config, table: TableConfig) -> dict:
    """Train RL^2 on ``family`` and evaluate one trial per test task; returns a result row."""
    learner = make_rl2(env, family, rl2)
    start = time.time()
    iterations = table.iterations
    states, metrics = train_seeds(learner, [table.seed], iterations, table.chunk_size, table.progress)
    params = jax.tree.map(lambda x: x[0], states.params)
    jax.block_until_ready(params)
    train_seconds = time.time() - start
    tasks = family.fixed_tasks("test", table.test_tasks)
    per_episode = evaluate_trials(learner, params, tasks, jax.random.key(table.eval_seed),
                                  rl2.episodes_per_trial).per_task
    total = summarize(per_episode.sum(axis=1))
    steps = iterations * rl2.trials_per_iteration * rl2.episodes_per_trial * env.horizon
    return {"mean": float(total.mean), "stderr": float(total.stderr), "iterations": iterations,
            "env_steps": steps, "train_seconds": round(train_seconds, 1),
            "per_episode": np.asarray(summarize(per_episode).mean).round(3).tolist(),
            "curve": np.asarray(metrics["trial_return"][0]).round(3).tolist()}


def fill_row(row: dict, baselines, env, family, episodes: int, rl2: RL2Config, table: TableConfig,
             curves: dict, label: str, reference: str) -> dict:
    """Add to ``row`` the classical baselines (``baselines() -> {name: totals [N]}``) and one trained
    RL^2 cell per core; training curves go to ``curves[label,core]``; prints each RL^2 result next to
    the ``reference`` baseline."""
    start = time.time()
    for name, totals in baselines().items():
        result = summarize(totals)
        row[name] = {"mean": float(result.mean), "stderr": float(result.stderr)}
    row["baselines_seconds"] = round(time.time() - start, 1)
    for core in table.core_names():
        cell_config = dataclasses.replace(rl2, core=core, episodes_per_trial=episodes)
        result = train_rl2_cell(env, family, cell_config, table)
        curves[f"{label},{core}"] = result.pop("curve")
        row[f"rl2_{core}"] = result
        print(f"{label} {core}: {result['mean']:.2f} ± {result['stderr']:.2f} ({reference} "
              f"{row[reference]['mean']:.2f}; {result['train_seconds']} s)", flush=True)
    return row


def markdown_table(rows: list[dict], row_key: str, columns: list[str]) -> str:
    """``| row_key | col... |``: ``mean ± s.e.`` for result cells, numbers as they are, blank if absent."""
    lines = ["| " + " | ".join([row_key] + columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for row in rows:
        cells = [row.get(c) for c in columns]
        text = [f"{c['mean']:.2f} ± {c['stderr']:.2f}" if isinstance(c, dict)
                else "" if c is None else f"{c:g}" for c in cells]
        lines.append("| " + " | ".join([str(row[row_key])] + text) + " |")
    return "\n".join(lines)


def write_outputs(out_dir: str, rows: list[dict], row_key: str, columns: list[str], curves: dict,
                  configs: dict) -> str:
    """Write ``results.{json,csv}`` (flat), ``results_full.json``, ``curves.json`` and ``table.md``;
    returns the markdown table."""
    os.makedirs(out_dir, exist_ok=True)
    flat = [{row_key: r[row_key], **{f"{c}_{s}": r[c][s] for c in columns if isinstance(r.get(c), dict)
                                     for s in ("mean", "stderr")}} for r in rows]
    write_table(out_dir, "results", flat)
    with open(os.path.join(out_dir, "results_full.json"), "w") as f:
        json.dump({"rows": rows, **{k: v.to_dict() for k, v in configs.items()},
                   "device": str(jax.devices()[0])}, f, indent=2)
    with open(os.path.join(out_dir, "curves.json"), "w") as f:
        json.dump(curves, f)
    text = markdown_table(rows, row_key, columns)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text + "\n")
    return text
