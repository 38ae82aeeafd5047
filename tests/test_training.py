"""The driver: resume equals an uninterrupted run; existing runs are never overwritten."""
import dataclasses
import json
import shutil

import pytest

import metajax
from experiments.common import run_directory_errors_as_exit
from metajax.config import parse_configs
from metajax.learners.maml import MAMLConfig, make_maml
from metajax.logs import MetricsLog
from metajax.testing import assert_trees_close
from metajax.training import WALL_SECONDS, TrainConfig, train, training_seconds

CFG = MAMLConfig(meta_batch_size=2, rollouts_per_task=2, hidden_sizes=(8,), cg_iters=2)


def _learner():
    env, tasks = metajax.make("point-robot-sparse-v1")
    return make_maml(env, tasks, CFG)


def _train_cfg(out, iterations):
    return TrainConfig(iterations=iterations, chunk_size=2, checkpoint_every=2, out_dir=str(out), progress=False)


def test_resume_equals_uninterrupted(tmp_path):
    """An interrupted run, moved to another directory and resumed with other chunks, ends in the
    uninterrupted run's state bitwise: where a run is stored and how its iterations are chunked
    are not part of its identity (older code stored them under ``"train"``; such runs resume)."""
    learner = _learner()
    uninterrupted = _train_cfg(tmp_path / "full", 6)
    full, full_rows = train(learner, uninterrupted, {"maml": CFG, "train": uninterrupted})
    cut = _train_cfg(tmp_path / "cut", 4)  # interrupted after 4 iterations, stored as older code did
    legacy_train = {k: v for k, v in cut.to_dict().items() if k not in ("iterations", "progress")}
    train(learner, cut, {"maml": CFG.to_dict(), "train": legacy_train})
    shutil.move(tmp_path / "cut", tmp_path / "moved")
    other_chunks = TrainConfig(iterations=6, chunk_size=1, checkpoint_every=1,
                               out_dir=str(tmp_path / "moved"), progress=False)
    resumed, rows = train(learner, other_chunks, {"maml": CFG, "train": other_chunks}, resume=True)
    assert int(resumed.step) == 6
    assert_trees_close(resumed, full, rtol=0, atol=0, what="resumed vs uninterrupted state")
    assert [r["iteration"] for r in rows] == list(range(1, 7))
    # wall time is the one column that differs; it keeps adding up across the resumed session
    seconds = [r.pop(WALL_SECONDS) for r in rows]
    assert seconds[0] > 0 and all(later > earlier for earlier, later in zip(seconds, seconds[1:]))
    for a, b in zip(rows, full_rows):
        assert b.pop(WALL_SECONDS) > 0
        assert a == pytest.approx(b, rel=0, abs=0)
    with pytest.raises(ValueError, match="train.seed: 0 -> 1"):
        reseeded = dataclasses.replace(other_chunks, seed=1)
        train(learner, reseeded, {"maml": CFG, "train": reseeded}, resume=True)


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path):
    learner = _learner()
    cfg = TrainConfig(iterations=4, chunk_size=2, checkpoint_every=4, out_dir=str(tmp_path), progress=False)
    train(learner, cfg, {})
    # simulate a crash after iteration 5 was logged but before its checkpoint, in the middle of
    # writing iteration 6's row
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 5, "stale": 1.0}) + "\n" + json.dumps({"iteration": 6})[:7])
    _, rows = train(learner, TrainConfig(iterations=6, chunk_size=2, checkpoint_every=2,
                                         out_dir=str(tmp_path), progress=False), {}, resume=True)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all("stale" not in r for r in rows)


def test_a_bad_row_before_the_last_line_is_an_error_naming_the_line(tmp_path):
    log = MetricsLog(str(tmp_path))
    log.append([{"iteration": 1}, {"iteration": 2}])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_text("{broken\n" + lines[1])
    with pytest.raises(ValueError, match="metrics.jsonl, line 1: not a JSON row"):
        log.read()


def test_resumed_chunks_off_the_checkpoint_grid_still_checkpoint(tmp_path):
    """Extending a run that ended off the chunk grid (3 iterations in chunks of 2) moves every later
    chunk end off the checkpoint grid (5, 7, 9); each chunk that passes a multiple of
    checkpoint_every must still save, or an interruption would lose all the resumed work."""
    learner = _learner()
    first = TrainConfig(iterations=3, chunk_size=2, checkpoint_every=2, out_dir=str(tmp_path), progress=False)
    train(learner, first, {})
    train(learner, dataclasses.replace(first, iterations=9), {}, resume=True)
    kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert kept == [5, 7, 9]  # the last three (max_to_keep) of 2, 3, 5, 7, 9


def test_existing_run_is_not_overwritten_and_config_changes_are_refused(tmp_path):
    learner = _learner()
    train(learner, _train_cfg(tmp_path, 2), {"a": 1})
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match="--resume"):
        train(learner, _train_cfg(tmp_path, 4), {"a": 1})
    with pytest.raises(ValueError, match="a: 1 -> 2"):
        train(learner, _train_cfg(tmp_path, 4), {"a": 2}, resume=True)
    # the experiment CLIs print either refusal as a one-line error instead of a traceback
    for config, resume, message in (({"a": 1}, False, "already holds checkpoints"), ({"a": 2}, True, "a: 1 -> 2")):
        with pytest.raises(SystemExit, match=f"^error: .*{message}"), run_directory_errors_as_exit():
            train(learner, _train_cfg(tmp_path, 4), config, resume=resume)
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_runs_from_before_an_option_existed_resume_only_at_its_default(tmp_path):
    """A checkpoint written before ``post_sampler_workers`` existed resumes with it at its default
    (the old behaviour) and is refused with any other value."""
    learner = _learner()
    old = {k: v for k, v in CFG.to_dict().items() if k != "post_sampler_workers"}
    train(learner, _train_cfg(tmp_path, 2), {"maml": old})
    state, _ = train(learner, _train_cfg(tmp_path, 4), {"maml": CFG}, resume=True)
    assert int(state.step) == 4
    changed = MAMLConfig(**{**CFG.to_dict(), "post_episode_pool": 4, "post_sampler_workers": 2})
    with pytest.raises(ValueError, match="maml.post_episode_pool: 0 -> 4; maml.post_sampler_workers: 0 -> 2"):
        train(learner, _train_cfg(tmp_path, 6), {"maml": changed}, resume=True)


def test_locomotion_resume_checks_training_settings_only(tmp_path):
    from experiments.locomotion import LocomotionConfig

    def identity(cfg, seed=0):  # what experiments.locomotion passes to train
        return {"family": "f", "config": cfg, "train": TrainConfig(seed=seed)}

    learner, cfg = _learner(), LocomotionConfig(meta_batch_size=2, hidden_sizes=(8,))
    train(learner, _train_cfg(tmp_path, 2), identity(cfg))
    # other evaluation settings: the finished run resumes (and would be evaluated again)
    evaluation = dataclasses.replace(cfg, test_tasks=3, eval_rollouts=4, oracle_updates=5, oracle_envs=6)
    state, _ = train(learner, _train_cfg(tmp_path, 2), identity(evaluation), resume=True)
    assert int(state.step) == 2
    with pytest.raises(ValueError, match=r"config\.inner_lr: [0-9.]+ -> 0\.2"):
        train(learner, _train_cfg(tmp_path, 2), identity(dataclasses.replace(cfg, inner_lr=0.2)), resume=True)
    # a run stored before evaluation settings left the identity (all fields as plain JSON) resumes
    legacy = tmp_path / "legacy"
    train(learner, _train_cfg(legacy, 2), {"family": "f", "config": cfg.to_dict(), "train": {"seed": 0}})
    state, _ = train(learner, _train_cfg(legacy, 2), identity(evaluation), resume=True)
    assert int(state.step) == 2
    with pytest.raises(ValueError, match="train.seed: 0 -> 1"):
        train(learner, _train_cfg(legacy, 2), identity(cfg, seed=1), resume=True)
    # a run stored before an option existed resumes while the option is at its default
    older = tmp_path / "older"
    without = {k: v for k, v in cfg.to_dict().items() if k != "rollouts_per_task"}
    train(learner, _train_cfg(older, 2), {"family": "f", "config": without, "train": {"seed": 0}})
    state, _ = train(learner, _train_cfg(older, 2), identity(cfg), resume=True)
    assert int(state.step) == 2
    with pytest.raises(ValueError, match="config.rollouts_per_task: 20 -> 3"):
        train(learner, _train_cfg(older, 2), identity(dataclasses.replace(cfg, rollouts_per_task=3)), resume=True)


def test_train_config_validation():
    with pytest.raises(ValueError, match="TrainConfig.checkpoint_every must be a multiple of chunk_size=5"):
        TrainConfig(checkpoint_every=7)
    with pytest.raises(ValueError, match=r"TrainConfig.iterations must be in \[1, inf\)"):
        TrainConfig(iterations=0)
    with pytest.raises(ValueError, match="TrainConfig.out_dir must be a non-empty string"):
        TrainConfig(out_dir="")


def test_cli_overrides_and_errors(capsys):
    (maml, tr), _ = parse_configs([MAMLConfig(), TrainConfig()],
                                  ["--inner-lr", "0.1", "--hidden-sizes", "32", "32", "--first-order", "true"])
    assert maml.inner_lr == 0.1 and maml.hidden_sizes == (32, 32) and maml.first_order
    with pytest.raises(SystemExit):
        parse_configs([MAMLConfig(), TrainConfig()], ["--max-kl", "-1"])
    assert "MAMLConfig.max_kl must be in (0.0, inf)" in capsys.readouterr().err


def test_help_states_what_each_kind_of_flag_accepts(capsys):
    with pytest.raises(SystemExit):
        parse_configs([MAMLConfig(), TrainConfig()], ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[a non-empty string; default 'runs/maml_navigation']" in text  # out_dir: no numeric range
    assert "[true or false; default False]" in text  # first_order
    assert "[in (0.0, inf); default 0.5]" in text  # inner_lr
    assert "[one of 'maml', 'lvc', 'dice'; default 'maml']" in text  # estimator


def test_csv_gains_new_columns_when_resuming_an_older_log(tmp_path):
    from metajax.logs import MetricsLog

    log = MetricsLog(str(tmp_path))
    log.append([{"iteration": 1, "loss": 0.5}])  # written by a version without wall time
    log.append([{"iteration": 2, "loss": 0.25, WALL_SECONDS: 3.0}])
    log.append([{"iteration": 3, "loss": 0.125, WALL_SECONDS: 4.0}])
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        f"iteration,loss,{WALL_SECONDS}", "1,0.5,", "2,0.25,3.0", "3,0.125,4.0"]
    assert training_seconds(log.read()[1:]) == 4.0
    assert training_seconds(log.read()[:1]) is None  # an older run's log cannot say
    assert training_seconds(log.read()) is None  # nor can one it was extended from: the count is partial


def test_fresh_start_drops_rows_of_an_attempt_that_never_checkpointed(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "stale": 1.0}) + "\n")
    _, rows = train(_learner(), _train_cfg(tmp_path, 2), {}, resume=True)
    assert [r["iteration"] for r in rows] == [1, 2] and all("stale" not in r for r in rows)
