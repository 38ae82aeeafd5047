"""Shared pieces of the experiment modules: the evaluation config, results files and plots."""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os

from metajax.config import Config, option
from metajax.training import RunDirectoryError


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    test_tasks: int = option(40, low=2, help="held-out test tasks")
    eval_rollouts: int = option(20, low=1, help="rollouts per adaptation step")
    adaptation_steps: int = option(3, low=0, high=10, help="report returns after 0..K steps")
    later_steps_lr_scale: float = option(0.5, low=0.0, low_open=True, high=1.0,
                                         help="inner step size scale for adaptation steps 2..K")
    eval_seed: int = option(12345, low=0, help="PRNG seed of the evaluation rollouts")


@contextlib.contextmanager
def run_directory_errors_as_exit():
    """A refused run directory (checkpoints there without ``--resume``, or ``--resume`` with another
    configuration) ends the CLI with its one-line message instead of a traceback."""
    try:
        yield
    except RunDirectoryError as error:
        raise SystemExit(f"error: {error}") from None


def write_table(out_dir: str, name: str, rows: list[dict]) -> tuple[str, str]:
    """Write ``rows`` as ``<name>.json`` and ``<name>.csv``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, csv_path = (os.path.join(out_dir, f"{name}.{ext}") for ext in ("json", "csv"))
    with open(json_path, "w") as f:
        json.dump(rows, f, indent=2)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path


def plot_adaptation(path: str, curves: dict, title: str, horizontal: dict | None = None) -> None:
    """Return vs adaptation steps; ``curves[label] = (means, stderrs)``, ``horizontal[label] = y``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (means, errs) in curves.items():
        steps = list(range(len(means)))
        style = "--" if "paper" in label else "-"
        ax.errorbar(steps, means, yerr=errs, label=label, linestyle=style, marker="o", capsize=3)
    for label, y in (horizontal or {}).items():
        ax.axhline(y, linestyle=":", color="gray" if "paper" in label else "black", label=label)
    ax.set_xticks(range(max(len(m) for m, _ in curves.values())))
    save_figure(fig, ax, path, "adaptation steps", "average return", title)


def save_figure(fig, ax, path: str, xlabel: str, ylabel: str, title: str) -> None:
    """Label, add the legend, write ``path`` and close."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
