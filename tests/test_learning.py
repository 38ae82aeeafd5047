"""Short learning tests with real thresholds (marked slow; part of the default CI run)."""
import jax
import pytest

import metajax
from metajax.evaluation import evaluate
from metajax.learners import (
    MAMLConfig, MetaSGDConfig, ProMPConfig, ReptileConfig, make_maml, make_meta_sgd, make_promp,
    make_reptile,
)
from metajax.training import make_chunk


@pytest.mark.slow
def test_maml_point_nav_post_adaptation_beats_pre_adaptation():
    env, task_dist = metajax.make("point-nav-v1")
    learner = make_maml(env, task_dist, MAMLConfig(meta_batch_size=20, rollouts_per_task=20))
    state = learner.init(jax.random.key(0))
    tasks = task_dist.test_tasks(20)
    run_eval = jax.jit(lambda p: evaluate(learner, env, p, tasks, jax.random.key(1), 1, 20))
    before = run_eval(state.params)
    state, metrics = make_chunk(learner, 15)(state)
    after = run_eval(state.params)
    gain_before = float(before.mean[1] - before.mean[0])
    gain_after = float(after.mean[1] - after.mean[0])
    # Untrained, one step gains ~10 and lands near -70; MAML's meta-training must make the
    # single step worth far more (paper: -40 -> -12 after 100 iterations).
    assert float(after.mean[1]) > -25.0, after.mean
    assert gain_after > 15.0 and gain_after > gain_before + 8.0, (gain_before, gain_after)
    assert float(metrics["post_return"][-3:].mean()) > float(metrics["pre_return"][-3:].mean()) + 10


# (factory, config, meta-iterations, min return after 1 step, min gain of that step); measured on a
# 2-core CPU with these seeds: FO-MAML -22.9 (gain 17.2), Meta-SGD -14.0 (24.8), ProMP -14.1 (24.8),
# Reptile -15.9 (22.3); the untrained policy gets -65 after one step (gain 12.8).
FAMILY = {
    "fo-maml": (make_maml, MAMLConfig(meta_batch_size=20, first_order=True), 15, -28.0, 12.0),
    "meta-sgd": (make_meta_sgd, MetaSGDConfig(meta_batch_size=20), 15, -22.0, 18.0),
    "promp": (make_promp, ProMPConfig(meta_batch_size=20, inner_lr=0.5), 15, -22.0, 18.0),
    "reptile": (make_reptile, ReptileConfig(meta_batch_size=20), 40, -24.0, 15.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY))
def test_gradient_family_learns_to_adapt_on_point_nav(name):
    factory, config, iterations, min_post, min_gain = FAMILY[name]
    env, task_dist = metajax.make("point-nav-v1")
    learner = factory(env, task_dist, config)
    state = learner.init(jax.random.key(0))
    tasks = task_dist.test_tasks(20)
    state, _ = make_chunk(learner, iterations)(state)
    after = jax.jit(lambda p: evaluate(learner, env, p, tasks, jax.random.key(1), 1, 20))(state.params)
    assert float(after.mean[1]) > min_post, after.mean
    assert float(after.mean[1] - after.mean[0]) > min_gain, after.mean


@pytest.mark.heavy
def test_maml_navigation_reproduces_figure_5(tmp_path):
    """The full default experiment (7-10 min on 2 CPU cores): Finn et al. 2017, Fig. 5.

    One step: the target. Two steps under the authors' batches: the issue's target is -3.6, which
    9 of 10 training seeds reach (README); other machines round differently and behave like
    another seed, so this asserts -4.0: below the worst seed (-3.83), above random init (-65) and
    above seed 0 with the exact Fisher product (-4.12)."""
    from experiments import maml_navigation

    maml_navigation.main(["--out-dir", str(tmp_path), "--progress", "false"])
    import json

    rows = json.loads((tmp_path / "results.json").read_text())
    assert rows[1]["maml_mean"] >= -12.8, rows[1]
    assert rows[0]["maml_mean"] < rows[1]["maml_mean"] - 15, rows[:2]
    assert rows[2]["maml_rllab_sampler_mean"] >= -4.0, rows[2]
