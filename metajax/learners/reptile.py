"""Reptile for RL (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018).

Per task: ``K`` inner policy-gradient steps from ``theta`` on fresh rollouts give ``phi``; the
meta-update feeds the pseudo-gradient ``theta - mean_tasks(phi)`` to an optax optimiser (plain SGD
with step ``epsilon`` gives ``theta <- theta + epsilon (mean phi - theta)``). No second
derivatives, no post-update batch. ``K >= 2``: with one step Reptile reduces to joint training
on the task mixture (the paper's Sec. 5).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from metajax.config import option
from metajax.learners.inner_loop import (
    InnerLoopConfig, auto_block_tasks, gradient_learner_api, make_inner_loop, require_config,
    vmap_task_blocks,
)
from metajax.rollout import episode_returns
from metajax.types import MetaLearner, MetaState


@dataclasses.dataclass(frozen=True)
class ReptileConfig(InnerLoopConfig):
    inner_steps: int = option(2, low=2, high=10, help="inner policy-gradient steps per task (K)")
    outer_optimizer: str = option("sgd", choices=("sgd", "adam"), help="optimiser fed theta - phi")
    outer_lr: float = option(1.0, low=0.0, low_open=True, help="outer step size epsilon")

    # inherited fields that would change nothing: Reptile differentiates nothing through the inner
    # update (so no second-order terms, estimator curvature or remat) and has no post-update batch
    NO_EFFECT: ClassVar[tuple[str, ...]] = (
        "first_order", "estimator", "post_episode_pool", "post_sampler_workers", "remat")

    def __post_init__(self):
        super().__post_init__()
        for f in dataclasses.fields(self):
            if f.name in self.NO_EFFECT and getattr(self, f.name) != f.default:
                raise ValueError(f"ReptileConfig.{f.name} has no effect in Reptile (no gradient through "
                                 f"the inner update, no post-update batch): leave it at {f.default!r}, "
                                 f"got {getattr(self, f.name)!r}")


def make_reptile(env, task_dist, config: ReptileConfig = ReptileConfig(), policy=None) -> MetaLearner:
    """Build Reptile's pure functions (``init / adapt / meta_step / make_policy``)."""
    require_config(config, ReptileConfig)
    cfg = config
    loop = make_inner_loop(env, task_dist, cfg, policy)
    optimizer = optax.sgd(cfg.outer_lr) if cfg.outer_optimizer == "sgd" else optax.adam(cfg.outer_lr)

    def adapt_tasks(params, key):
        """Adapted weights ``[M, ...]`` and inner data on a fresh meta-batch of tasks."""
        task_key, rollout_key = jax.random.split(key)
        tasks = jax.vmap(task_dist.sample)(jax.random.split(task_key, cfg.meta_batch_size))
        keys = jax.random.split(rollout_key, cfg.meta_batch_size)
        adapt = lambda task, task_key: loop.adapt_collect(params, task, task_key)  # noqa: E731
        blocks = auto_block_tasks(cfg.meta_batch_size)  # in turn: a CPU's cache holds a block
        return jax.lax.stop_gradient(vmap_task_blocks(adapt, (tasks, keys), blocks))

    def meta_step(state: MetaState, key):
        adapted, (batches, _) = adapt_tasks(state.params, key)
        pseudo_grad = jax.tree.map(lambda p, phi: p - jnp.mean(phi, axis=0), state.params, adapted)
        updates, opt_state = optimizer.update(pseudo_grad, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "pre_return": jnp.mean(jax.vmap(episode_returns)(batches[0])),
            "post_return": jnp.mean(jax.vmap(episode_returns)(batches[1])),  # after one step
            "pseudo_grad_norm": optax.global_norm(pseudo_grad),
        }
        return MetaState(params, opt_state, state.key, state.step + 1), metrics

    def init(key) -> MetaState:
        init_key, state_key = jax.random.split(key)
        params = loop.policy.init(init_key, jnp.zeros((1, env.observation_size)))
        return MetaState(params, optimizer.init(params), state_key, jnp.zeros((), jnp.int32))

    return MetaLearner(init=init, meta_step=meta_step, **gradient_learner_api(loop, loop.policy.apply))
