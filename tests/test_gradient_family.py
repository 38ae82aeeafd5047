"""FO-MAML, Reptile, Meta-SGD, ProMP and the MAML estimator variants: conformance, exact relations
to MAML, config validation."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.learners import (
    MAMLConfig, MetaSGDConfig, ProMPConfig, ReptileConfig, make_maml, make_meta_sgd, make_promp,
    make_reptile,
)
from metajax.testing import assert_trees_close, check_learner

TINY = dict(meta_batch_size=2, rollouts_per_task=3, hidden_sizes=(8,))


@pytest.mark.parametrize("name, factory, config", [
    ("reptile", make_reptile, ReptileConfig(**TINY)),
    pytest.param("reptile-adam", make_reptile,  # same adaptation as reptile; Adam outer step
                 ReptileConfig(**TINY, outer_optimizer="adam", inner_steps=3), marks=pytest.mark.heavy),
    ("meta-sgd", make_meta_sgd, MetaSGDConfig(**TINY, cg_iters=3)),
    ("promp", make_promp, ProMPConfig(**TINY, promp_steps=2, adaptive_kl_penalty=True)),
    ("maml-lvc", make_maml, MAMLConfig(**TINY, cg_iters=3, estimator="lvc")),
    ("maml-dice", make_maml, MAMLConfig(**TINY, cg_iters=3, estimator="dice", inner_steps=2)),
])
def test_conformance_on_point_nav(name, factory, config):
    env, tasks = metajax.make("point-nav-v1")
    check_learner(factory(env, tasks, config), env, tasks, eager=name in ("reptile", "promp"))


@pytest.mark.parametrize("factory, config", [
    (make_maml, MAMLConfig(**TINY, cg_iters=3)),
    (make_reptile, ReptileConfig(**TINY)),
])
def test_conformance_on_cartpole_params(factory, config):
    env, tasks = metajax.make("cartpole-params-v1")
    learner = factory(env, tasks, config)
    check_learner(learner, env, tasks, eager=False)
    state = learner.init(jax.random.key(0))
    dist, _ = learner.make_policy(state.params)(jnp.zeros((3, 4)))
    assert dist.sample(seed=jax.random.key(1)).shape == (3,)  # discrete actions


def test_meta_sgd_with_equal_step_sizes_equals_maml():
    env, tasks = metajax.make("point-nav-v1")
    common = dict(**TINY, outer_optimizer="adam", outer_lr=1e-2, inner_lr=0.3)
    maml = make_maml(env, tasks, MAMLConfig(**common))
    meta_sgd = make_meta_sgd(env, tasks, MetaSGDConfig(**common))
    maml_state, sgd_state = maml.init(jax.random.key(0)), meta_sgd.init(jax.random.key(0))
    assert_trees_close(sgd_state.params["policy"], maml_state.params, what="same initial weights")
    for step_size in jax.tree.leaves(sgd_state.params["step_size"]):
        np.testing.assert_allclose(step_size, 0.3)
    task = tasks.sample(jax.random.key(5))
    assert_trees_close(meta_sgd.adapt(sgd_state.params, task, jax.random.key(6)),
                       maml.adapt(maml_state.params, task, jax.random.key(6)), what="adapt")
    # Adam is elementwise, so the weights' update equals MAML's when their meta-gradients do
    new_maml, maml_metrics = jax.jit(maml.meta_step)(maml_state, jax.random.key(7))
    new_sgd, sgd_metrics = jax.jit(meta_sgd.meta_step)(sgd_state, jax.random.key(7))
    assert_trees_close(new_sgd.params["policy"], new_maml.params, rtol=1e-4, atol=1e-6, what="meta-step")
    for name in ("pre_return", "post_return", "loss_before"):
        np.testing.assert_allclose(sgd_metrics[name], maml_metrics[name], rtol=1e-5)
    # ... and the step sizes themselves moved
    moved = jax.tree.map(lambda a: float(jnp.max(jnp.abs(a - 0.3))), new_sgd.params["step_size"])
    assert max(jax.tree.leaves(moved)) > 1e-4


@pytest.mark.parametrize("block", [1, 2])
def test_promp_over_blocks_of_tasks_gives_the_single_pass_step(monkeypatch, block):
    """ProMP's collection and outer Adam steps over blocks of tasks only reorder sums. No baseline:
    its float32 normal equations amplify reordered sums (see test_maml's collection test)."""
    import metajax.learners.promp as promp
    env, tasks = metajax.make("point-nav-v1")
    cfg = ProMPConfig(**{**TINY, "meta_batch_size": 4}, baseline="none")
    steps = []
    for tasks_per_block in (0, block):  # 0: one pass
        monkeypatch.setattr(promp, "auto_block_tasks", lambda num_tasks, b=tasks_per_block: b)
        learner = make_promp(env, tasks, cfg)
        steps.append(jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1)))
    assert_trees_close(steps[0], steps[1], rtol=1e-4, atol=1e-6, what=f"ProMP in blocks of {block}")
    assert float(steps[0][1]["inner_kl"]) > 0


@pytest.mark.parametrize("outer_lr", [1.0, 0.3])
def test_reptile_update_moves_theta_towards_the_mean_adapted_weights(outer_lr):
    env, tasks = metajax.make("point-nav-v1")
    # 4 tasks: on a CPU the meta-step adapts them in 2 blocks of 2, checked here against one vmap
    cfg = ReptileConfig(**{**TINY, "meta_batch_size": 4}, inner_steps=3, outer_lr=outer_lr)
    learner = make_reptile(env, tasks, cfg)
    state = learner.init(jax.random.key(0))
    key = jax.random.key(1)
    new_state, metrics = jax.jit(learner.meta_step)(state, key)
    # the same tasks and keys the meta-step uses
    task_key, rollout_key = jax.random.split(key)
    batch_tasks = jax.vmap(tasks.sample)(jax.random.split(task_key, cfg.meta_batch_size))
    keys = jax.random.split(rollout_key, cfg.meta_batch_size)
    adapted = jax.jit(jax.vmap(learner.adapt, in_axes=(None, 0, 0)))(state.params, batch_tasks, keys)
    mean_phi = jax.tree.map(lambda phi: jnp.mean(phi, axis=0), adapted)
    expected = jax.tree.map(lambda t, phi: t - outer_lr * (t - phi), state.params, mean_phi)
    assert_trees_close(new_state.params, expected, rtol=1e-4, atol=1e-6, what="theta - eps (theta - phi)")
    assert float(metrics["pseudo_grad_norm"]) > 0


@pytest.mark.parametrize("config_cls, field, value, allowed", [
    (ReptileConfig, "inner_steps", 1, r"in \[2, 10\]"),
    (ReptileConfig, "outer_optimizer", "trpo", "one of 'sgd', 'adam'"),
    (ProMPConfig, "clip_eps", 0.0, r"in \(0.0, 1.0\]"),
    (ProMPConfig, "promp_steps", 0, r"in \[1, inf\)"),
    (ProMPConfig, "estimator", "reinforce", "one of 'maml', 'lvc', 'dice'"),
    (MetaSGDConfig, "inner_lr", -0.1, r"in \(0.0, inf\)"),
    (MAMLConfig, "baseline", "value", "one of 'linear', 'none'"),
])
def test_bad_config_values_name_the_field_and_range(config_cls, field, value, allowed):
    with pytest.raises(ValueError, match=rf"{config_cls.__name__}\.{field} must be .*{allowed}"):
        config_cls(**{field: value})


@pytest.mark.parametrize("factory, wrong", [
    (make_reptile, MAMLConfig()), (make_promp, MAMLConfig()), (make_meta_sgd, MAMLConfig()),
])
def test_factories_reject_other_learners_configs(factory, wrong):
    env, tasks = metajax.make("point-nav-v1")
    with pytest.raises(TypeError, match="config must be a"):
        factory(env, tasks, wrong)
    with pytest.raises(TypeError):
        factory(env, tasks, dataclasses.asdict(wrong))


@pytest.mark.parametrize("field, value", [("first_order", True), ("estimator", "dice"), ("remat", True),
                                          ("post_episode_pool", 40)])
def test_reptile_refuses_inherited_settings_it_would_ignore(field, value):
    with pytest.raises(ValueError, match=rf"ReptileConfig\.{field} has no effect in Reptile"):
        ReptileConfig(**{field: value})

