"""The training driver: ``lax.scan`` over chunks of meta-iterations, a thin host loop between
chunks that logs metrics (CSV/JSONL), shows progress and checkpoints the full state.

Resuming restores the last checkpoint (params, optimiser state, PRNG key, step, config) and runs
the same compiled chunks from there, so an interrupted and resumed run equals an uninterrupted one.
Each metric row also carries ``wall_seconds``, the run's training wall time up to that iteration
(compilation included, summed over resumed sessions); it is the one column that differs between
an interrupted and an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from metajax.checkpoint import Checkpointer
from metajax.config import Config, option
from metajax.logs import MetricsLog
from metajax.types import MetaLearner, MetaState


class RunDirectoryError(Exception):
    """``train`` refused its ``out_dir`` before changing anything in it (the CLIs print it as one line)."""


class ExistingRunError(RunDirectoryError, FileExistsError):
    """``out_dir`` already holds checkpoints and ``resume`` was not asked for."""


class ResumeConfigError(RunDirectoryError, ValueError):
    """``resume`` with a configuration other than the checkpoint's; the message names each field."""


WALL_SECONDS = "wall_seconds"  # metric column: cumulative training wall time of the run


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    iterations: int = option(100, low=1, help="meta-iterations in total")
    chunk_size: int = option(5, low=1, help="meta-iterations per compiled lax.scan chunk")
    checkpoint_every: int = option(10, low=1, help="checkpoint period; a multiple of chunk_size")
    seed: int = option(0, low=0, help="PRNG seed of the run")
    out_dir: str = option("runs/maml_navigation", help="where metrics and checkpoints go")
    progress: bool = option(True, help="show a progress bar")

    # how a run is executed and where it is stored: a run may be moved, or resumed longer or with
    # other chunks (the state after each iteration is the same), and still be the same run
    NOT_IN_RUN_IDENTITY = ("iterations", "chunk_size", "checkpoint_every", "out_dir", "progress")

    def __post_init__(self):
        super().__post_init__()
        if self.checkpoint_every % self.chunk_size:
            raise ValueError(
                f"TrainConfig.checkpoint_every must be a multiple of chunk_size={self.chunk_size}, "
                f"got {self.checkpoint_every}"
            )


def _scan_chunk(learner: MetaLearner, length: int) -> Callable:
    def body(state: MetaState, _):
        key, step_key = jax.random.split(state.key)
        return learner.meta_step(state._replace(key=key), step_key)

    return lambda state: jax.lax.scan(body, state, None, length=length)


def make_chunk(learner: MetaLearner, length: int) -> Callable:
    """A jitted ``state -> (state, metrics [length, ...])`` running ``length`` meta-iterations."""
    return jax.jit(_scan_chunk(learner, length))


def train_seeds(learner: MetaLearner, seeds, iterations: int, chunk_size: int = 5,
                progress: bool = False) -> tuple[MetaState, dict]:
    """Meta-train one run per seed at once, vmapping the compiled chunks over seeds.

    Returns the final states (leaves ``[S, ...]``) and the metrics as ``{name: array [S, iterations]}``.
    No checkpoints: meant for comparisons; use ``train`` for long runs.
    """
    states = jax.vmap(learner.init)(jnp.stack([jax.random.key(int(s)) for s in seeds]))
    chunks: dict[int, Callable] = {}
    history: list[dict] = []
    bar = _progress(TrainConfig(iterations=iterations, progress=progress), 0)
    done = 0
    while done < iterations:
        length = min(chunk_size, iterations - done)
        if length not in chunks:
            chunks[length] = jax.jit(jax.vmap(_scan_chunk(learner, length)))
        states, metrics = chunks[length](states)
        history.append(jax.device_get(metrics))
        done += length
        if bar is not None:
            bar.update(length)
    if bar is not None:
        bar.close()
    stacked = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]}
    return states, stacked


def _changed_fields(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``"a.b: old -> new"`` for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            out += _changed_fields(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return out


def train(
    learner: MetaLearner,
    config: TrainConfig,
    run_config: dict,
    resume: bool = False,
    on_chunk: Callable[[MetaState, list[dict]], None] | None = None,
) -> tuple[MetaState, list[dict]]:
    """Meta-train ``learner`` for ``config.iterations``; returns the final state and all metric rows.

    Args:
      run_config: the full configuration of the run (JSON-able values or ``Config``s), stored in
        every checkpoint; a resumed run must be given the same one (options added to a ``Config``
        since the checkpoint was written must be at their defaults). Each ``Config``'s
        ``NOT_IN_RUN_IDENTITY`` fields are left out, so they may change on resume.
      resume: continue from the latest checkpoint in ``config.out_dir``. Without it, a directory
        that already holds checkpoints is refused rather than overwritten.
    """
    checkpointer = Checkpointer(os.path.join(config.out_dir, "checkpoints"))
    log = MetricsLog(config.out_dir)
    state = learner.init(jax.random.key(config.seed))
    latest = checkpointer.latest_step()
    if resume and latest is not None:
        saved, current = _comparable(checkpointer.read_config(), run_config), _identity(run_config)
        if saved != current:
            changed = "; ".join(_changed_fields(saved, current))
            raise ResumeConfigError(f"--resume with a different configuration (checkpoint -> now): {changed}")
        state, _ = checkpointer.restore(state)
        log.truncate_after(int(state.step))
    elif latest is not None:
        raise ExistingRunError(
            f"{config.out_dir} already holds checkpoints (latest step {latest}); pass --resume to "
            "continue or choose another out_dir"
        )
    else:  # a fresh start: rows of an earlier attempt that never reached a checkpoint are stale
        log.truncate_after(0)
    chunks: dict[int, Callable] = {}
    bar = _progress(config, int(state.step))
    # a run logged before this column existed counts from here; training_seconds then says None
    done = log.read()
    wall_seconds = done[-1].get(WALL_SECONDS, 0.0) if done else 0.0
    while int(state.step) < config.iterations:
        length = min(config.chunk_size, config.iterations - int(state.step))
        started = time.perf_counter()
        if length not in chunks:
            chunks[length] = make_chunk(learner, length)
        first = int(state.step)
        state, metrics = chunks[length](state)
        rows = _rows(metrics, first)  # waits for the chunk
        chunk_seconds = time.perf_counter() - started
        for i, row in enumerate(rows):  # to the µs: the rows of a chunk of a ms or less still differ
            row[WALL_SECONDS] = round(wall_seconds + chunk_seconds * (i + 1) / length, 6)
        wall_seconds += chunk_seconds
        log.append(rows)
        step = int(state.step)
        # a chunk that reaches or passes a multiple of checkpoint_every saves (a resumed run's
        # chunks need not start on that grid: an extended run, or another --chunk-size)
        if step // config.checkpoint_every > first // config.checkpoint_every or step == config.iterations:
            checkpointer.save(step, state, _identity(run_config))
        if on_chunk is not None:
            on_chunk(state, rows)
        if bar is not None:
            bar.update(length)
            bar.set_postfix({k: f"{v:.3g}" for k, v in rows[-1].items() if "return" in k})
    if bar is not None:
        bar.close()
    checkpointer.close()
    return state, log.read()


def training_seconds(history: list[dict]) -> float | None:
    """The run's training wall time from its metric rows. None when any row lacks ``wall_seconds``:
    a log begun by a version without the column only counts the sessions since, not the run."""
    if not history or any(WALL_SECONDS not in row for row in history):
        return None
    return history[-1][WALL_SECONDS]


def _rows(metrics: dict, first_iteration: int) -> list[dict]:
    host = jax.device_get(metrics)
    length = len(next(iter(host.values()))) if host else 0
    return [
        {"iteration": first_iteration + i + 1, **{k: float(np.asarray(v[i])) for k, v in host.items()}}
        for i in range(length)
    ]


def _identity(run_config: dict) -> dict:
    """``run_config`` as JSON values, each ``Config`` without its ``NOT_IN_RUN_IDENTITY`` fields."""
    return {name: _without_exempt(value, _jsonable(value)) for name, value in run_config.items()}


def _without_exempt(value, values):
    if not isinstance(value, Config) or not isinstance(values, dict):
        return values
    return {k: v for k, v in values.items() if k not in value.NOT_IN_RUN_IDENTITY}


def _comparable(saved: dict, run_config: dict) -> dict:
    """``saved`` as ``_identity`` gives it today: for each ``Config`` of ``run_config``, the options
    added since the checkpoint was written at their defaults (a new option defaults to the behaviour
    before it existed) and the fields now outside the identity dropped, so that runs written by
    older code stay resumable while any real change is still caught."""
    filled = dict(saved)
    for name, value in run_config.items():
        if isinstance(value, Config) and isinstance(saved.get(name), dict):
            defaults = _jsonable(type(value)().to_dict())
            filled[name] = _without_exempt(value, {**defaults, **saved[name]})
    return filled


def _jsonable(value):
    if isinstance(value, Config):
        return _jsonable(value.to_dict())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic, jnp.ndarray)):
        return np.asarray(value).item()
    return value


def _progress(config: TrainConfig, start: int):
    if not config.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=config.iterations, initial=start, desc="meta-train", unit="it")
