"""The quickstart notebook and the experiment module run end to end on smoke settings."""
import dataclasses
import json
import os

import jax
import numpy as np
import pytest

import metajax

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "notebooks", "quickstart.ipynb")


@pytest.mark.slow
def test_quickstart_notebook_executes(monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("METAJAX_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "MAML" in outputs and "oracle" in outputs


@pytest.mark.slow
def test_maml_navigation_experiment_smoke(tmp_path, capsys):
    from experiments import maml_navigation

    out = tmp_path / "run"
    argv = ["--iterations", "2", "--chunk-size", "1", "--checkpoint-every", "1", "--meta-batch-size", "2",
            "--rollouts-per-task", "2", "--hidden-sizes", "16", "--test-tasks", "4", "--eval-rollouts", "2",
            "--out-dir", str(out), "--progress", "false"]
    maml_navigation.main(argv)
    rows = json.loads((out / "results.json").read_text())
    assert [r["adaptation_steps"] for r in rows] == [0, 1, 2, 3]
    assert rows[1]["paper_maml"] == -11.7 and rows[0]["oracle_mean"] > -5.0
    assert all(r["maml_authors_goals_mean"] < 0 for r in rows)
    assert (out / "adaptation.png").stat().st_size > 1000
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    summary = json.loads((out / "summary.json").read_text())
    trained = summary["train_seconds"]
    assert set(summary["passed_targets_rllab_batches"]) == {"1", "2"}
    # targets judged on 2 episodes per step are not called the protocol's (20 per step)
    assert summary["eval_rollouts"] == 2
    assert "targets met (2 episodes per step, not the protocol's 20)" in capsys.readouterr().out
    # resuming a finished run trains nothing more and keeps the log intact; a longer run extends it
    maml_navigation.main(argv + ["--resume"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert json.loads((out / "summary.json").read_text())["train_seconds"] == trained > 0
    longer = ["3" if a == "2" and argv[i - 1] == "--iterations" else a for i, a in enumerate(argv)]
    maml_navigation.main(longer + ["--resume"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 4


def test_authors_test_goals():
    from experiments.maml_navigation import authors_test_tasks

    goals = np.asarray(authors_test_tasks().goal)
    assert goals.shape == (40, 2) and np.all(np.abs(goals) <= 0.5)
    # goal 6 is the one the authors' path plots show (icml/make_paths_plot.py in cbfinn/maml_rl)
    np.testing.assert_allclose(goals[6], [-0.29554775, 0.37811744], atol=1e-7)


def test_experiment_rejects_bad_flags(capsys):
    from experiments import maml_navigation

    with pytest.raises(SystemExit):
        maml_navigation.main(["--inner-lr", "-0.5"])
    assert "MAMLConfig.inner_lr must be in (0.0, inf)" in capsys.readouterr().err


@pytest.mark.slow
def test_gradient_family_experiment_smoke(tmp_path):
    from experiments import gradient_family

    out = tmp_path / "family"
    summary = gradient_family.main(["--smoke", "--out-dir", str(out), "--learners", "maml,reptile,promp"])
    rows = json.loads((out / "results.json").read_text())
    assert [r["learner"] for r in rows] == ["maml", "reptile", "promp", "random init"]
    assert rows[0]["env_steps"] == rows[1]["env_steps"] == 2 * 2 * 2 * 2 * 100  # equal budgets
    curves = json.loads((out / "curves.json").read_text())["curves"]
    assert len(curves["reptile"]["post_return"]) == 2 and len(curves["reptile"]["post_return"][0]) == 2
    assert (out / "returns_vs_env_steps.png").stat().st_size > 1000
    assert summary["oracle"] > -5.0
    with pytest.raises(SystemExit):
        gradient_family.main(["--learners", "maml,pearl"])


def test_throughput_rows_for_a_family_learner_and_the_raw_rollout():
    from experiments import throughput

    row = throughput.measure(2, "trpo", repeats=1, learner_name="reptile")
    assert row["workload"] == "reptile" and row["env_steps"] == 2 * 2 * 20 * 100 and row["steps_per_s"] > 0
    raw = throughput.measure(2, "trpo", repeats=1, part="rollout")
    assert raw["env_steps"] == 2 * 20 * 100


def test_throughput_locomotion_scaling_flags_are_checked_before_anything_runs(capsys):
    from experiments import throughput

    with pytest.raises(SystemExit):
        throughput.main(["--locomotion-scaling", "20", "300", "--fisher-chunk-tasks", "200"])
    assert "--fisher-chunk-tasks 200 must divide every --locomotion-scaling size above it, got 300" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit):
        throughput.main(["--locomotion-scaling", "0"])
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        throughput.main(["--tasks", "--large-tasks", "0"])
    assert "--tasks and --large-tasks must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        throughput.main(["--backend-rates", "point-nav-v1", "2", "2"])
    assert "--backend-rates needs a reward-defined brax family (halfcheetah-vel-v1, " in capsys.readouterr().err


def test_locomotion_oracle_only_refuses_resume_before_anything_runs(tmp_path, capsys):
    from experiments import locomotion

    with pytest.raises(SystemExit):
        locomotion.main(["--oracle-only", "--resume", "--out-dir", str(tmp_path / "run")])
    assert "argument --resume: not allowed with argument --oracle-only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "oracles").exists()


def test_locomotion_oracles_are_trained_once_per_setting_and_read_back(tmp_path, monkeypatch):
    from experiments import locomotion
    from metajax.ppo import PPOConfig

    env, task_dist = metajax.make("point-nav-v1")  # the oracle code is env-generic; this one is cheap
    tasks = task_dist.test_tasks(2)
    ppo = PPOConfig(num_envs=2, rollout_steps=8, updates=2, epochs=1, minibatches=1, hidden_sizes=(8,))
    keys = jax.random.split(jax.random.key(0))
    first = locomotion.oracle_return(env, "point-nav-v1", tasks, *keys, ppo, 2, str(tmp_path))
    assert not first["oracle_cached"] and np.isfinite(first["oracle"]) and first["oracle_seconds"] > 0

    class TrainedAgain(Exception):
        pass

    def refuse(*args, **kwargs):
        raise TrainedAgain

    monkeypatch.setattr(locomotion, "train_ppo", refuse)
    again = locomotion.oracle_return(env, "point-nav-v1", tasks, *keys, ppo, 2, str(tmp_path))
    assert again == {**first, "oracle_cached": True}
    others = [(task_dist.test_tasks(3), keys, ppo, 2), (tasks, keys[::-1], ppo, 2),
              (tasks, keys, dataclasses.replace(ppo, updates=3), 2), (tasks, keys, ppo, 3)]
    for other_tasks, other_keys, other_ppo, rollouts in others:
        with pytest.raises(TrainedAgain):
            locomotion.oracle_return(env, "point-nav-v1", other_tasks, *other_keys, other_ppo, rollouts,
                                     str(tmp_path))


@pytest.mark.slow
def test_rl2_experiments_smoke(tmp_path, capsys):
    from experiments import rl2_bandits, rl2_mdps

    rows = rl2_bandits.run(*_rl2_configs(rl2_bandits.BanditsConfig, tmp_path / "bandits"))
    assert [r["cell"] for r in rows] == ["k=5, n=10"] and rows[0]["paper_rl2"] == 6.7
    cells = json.loads((tmp_path / "bandits" / "results.json").read_text())[0]
    assert set(cells) >= {f"{c}_mean" for c in rl2_bandits.COLUMNS}
    assert abs(cells["random_mean"] - 5.0) < 0.5 and cells["oracle_mean"] > cells["thompson_mean"]
    assert "| k=5, n=10 |" in (tmp_path / "bandits" / "table.md").read_text()
    rows = rl2_mdps.run(*_rl2_configs(rl2_mdps.MDPsConfig, tmp_path / "mdps"))
    assert rows[0]["n"] == 10 and rows[0]["rl2_transformer"]["iterations"] == 10
    assert rows[0]["random"]["mean"] < rows[0]["psrl"]["mean"] < rows[0]["oracle"]["mean"]
    with pytest.raises(SystemExit):
        rl2_bandits.main(["--pulls", "10,20"])
    assert "BanditsConfig.pulls must be a comma-separated subset of 10, 100, 500" in capsys.readouterr().err


def _rl2_configs(config_cls, out_dir):
    from experiments.rl2_common import TableConfig
    from metajax.learners.rl2 import RL2Config

    return config_cls(out_dir=str(out_dir)), TableConfig(progress=False), RL2Config(), True


def test_throughput_rows_for_rl2():
    from experiments import throughput

    rows = throughput.measure_rl2("bandit-k5-v1", episodes=4, trials=8, core="gru", repeats=1)
    assert [r["workload"] for r in rows] == ["RL2-gru/meta_step", "RL2-gru/act"]
    assert all(r["env_steps"] == 32 and r["steps_per_s"] > 0 for r in rows)
