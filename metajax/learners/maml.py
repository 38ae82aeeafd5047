"""MAML for RL (Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017); FO-MAML with ``first_order=True``.

Inner loop: ``K`` vanilla policy-gradient steps (``metajax.learners.inner_loop``).
Outer loop: TRPO on the post-update rollouts, differentiating through the inner updates (second
order; ``first_order=True`` stops the gradient through the inner gradient), with the mean KL of the
post-update policy as the trust region; or one Adam step on the same surrogate.
``estimator`` picks the inner objective and with it the meta-gradient estimator: the MAML paper's
(no sampling-distribution term), LVC or DiCE (see ``metajax.estimators``).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from metajax import losses
from metajax.config import option
from metajax.learners.inner_loop import (
    InnerLoop, InnerLoopConfig, MetaBatch, adaptation_metrics, auto_block_tasks, gradient_learner_api,
    make_inner_loop, map_task_blocks, require_config,
)
from metajax.networks import distribution_from_params
from metajax.optim import trpo_step
from metajax.types import MetaLearner, MetaState


@dataclasses.dataclass(frozen=True)
class MAMLConfig(InnerLoopConfig):
    outer_optimizer: str = option("trpo", choices=("trpo", "adam"), help="outer update rule")
    outer_lr: float = option(1e-3, low=0.0, low_open=True, help="Adam step size (adam only)")
    max_kl: float = option(0.01, low=0.0, low_open=True, help="TRPO mean-KL limit")
    cg_iters: int = option(10, low=1, help="conjugate-gradient iterations")
    cg_damping: float = option(1e-5, low=0.0, help="damping added to the Fisher product")
    max_backtracks: int = option(15, low=1, help="line-search candidates")
    backtrack_ratio: float = option(0.8, low=0.0, low_open=True, high=0.99, help="line-search shrink")
    fisher_task_chunks: int = option(1, low=1, help="compute the Fisher product over this many "
                                     "task chunks in turn, each linearised afresh per product "
                                     "(least memory, more compute)")
    fisher_block_tasks: int = option(0, low=0, help="the passes through the inner update (data "
                                     "collection and the outer step's Fisher products, gradient and "
                                     "line search) over blocks of this many tasks in turn (small "
                                     "blocks stay in a CPU's cache); 0: automatic, 2 on a CPU and "
                                     "all tasks at once on a GPU/TPU")
    fisher_product: str = option("gauss_newton", choices=("gauss_newton", "kl_hessian",
                                                          "finite_difference"),
                                 help="Fisher-vector product: J^T H J through the policy outputs, "
                                 "the KL's Hessian by forward-over-reverse autodiff (same value), "
                                 "or rllab's central difference of the KL gradient (the MAML "
                                 "authors' TRPO; see finite_difference_eps)")
    finite_difference_eps: float = option(1.0, low=0.0, low_open=True,
                                          help="finite_difference only: the perturbation is "
                                          "eps / |params| times the vector (the authors' code "
                                          "passes 1: num_slices lands in rllab's base_eps)")

    def __post_init__(self):
        super().__post_init__()
        if self.meta_batch_size % self.fisher_task_chunks:
            raise ValueError(
                f"{type(self).__name__}.fisher_task_chunks must divide "
                f"meta_batch_size={self.meta_batch_size}, got {self.fisher_task_chunks}"
            )
        if self.fisher_block_tasks and (self.meta_batch_size % self.fisher_block_tasks
                                        or self.fisher_task_chunks > 1):
            raise ValueError(
                f"{type(self).__name__}.fisher_block_tasks must be 0 or divide "
                f"meta_batch_size={self.meta_batch_size}, and applies only with fisher_task_chunks=1; "
                f"got {self.fisher_block_tasks} (fisher_task_chunks={self.fisher_task_chunks})"
            )
        if self.fisher_product == "finite_difference" and self.fisher_task_chunks > 1:
            raise ValueError(f"{type(self).__name__}.fisher_task_chunks must be 1 with "
                             f"fisher_product='finite_difference', got {self.fisher_task_chunks}")


def maml_surrogate_and_kl(loop: InnerLoop, meta, data: MetaBatch, block_tasks: int = 0):
    """(TRPO surrogate, mean post-update KL) at ``meta``, differentiable through the adaptation;
    computed over blocks of ``block_tasks`` tasks in turn (0: all at once; ``map_task_blocks``)."""
    def block(part: MetaBatch):
        params = loop.post_policy_params(meta, part)
        return surrogate_of_post_params(part, params), loop.post_kl_from_params(part, params)
    surrogates, kls = map_task_blocks(block, data, block_tasks)  # equal blocks: mean of block means
    return jnp.mean(surrogates), jnp.mean(kls)


def surrogate_of_post_params(data: MetaBatch, params):
    """The TRPO surrogate (mean over tasks) given the post-update policies' distribution parameters."""
    log_probs = jax.vmap(lambda p, post: distribution_from_params(p).log_prob(post.action))(params, data.post)
    surrogate = jax.vmap(losses.importance_surrogate)(
        log_probs, data.post.log_prob, data.post_advantages, data.post.valid)
    return jnp.mean(surrogate)


def outer_update(loop: InnerLoop, cfg: MAMLConfig, state: MetaState, data: MetaBatch):
    """MAML's outer step (TRPO or Adam) on ``data``: returns (meta-params, opt state, metrics)."""
    chunks, block = cfg.fisher_task_chunks, fisher_block_tasks(cfg)
    both = lambda meta: maml_surrogate_and_kl(loop, meta, data, block)
    surrogate = lambda meta: both(meta)[0]
    kl = lambda meta: both(meta)[1]
    if cfg.outer_optimizer == "adam":
        loss, grads = jax.value_and_grad(surrogate)(state.params)
        updates, opt_state = optax.adam(cfg.outer_lr).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return params, opt_state, {"loss_before": loss, "kl": kl(params)}
    gauss_newton = cfg.fisher_product == "gauss_newton"
    chunk = lambda i: _task_chunk(data, i, chunks)  # noqa: E731
    outputs_part = lambda meta, i: loop.post_policy_params(meta, chunk(i))  # noqa: E731
    divergence_part = lambda params, i: loop.post_kl_from_params(chunk(i), params)  # noqa: E731
    params, info = trpo_step(
        surrogate, kl, state.params, cfg.max_kl, cfg.cg_iters, cfg.cg_damping,
        cfg.backtrack_ratio, cfg.max_backtracks, loss_and_kl_fn=both,
        kl_part_fn=lambda meta, i: maml_surrogate_and_kl(loop, meta, chunk(i))[1],
        num_parts=chunks,
        kl_outputs=(lambda meta: loop.post_params_linearization(meta, data, block),
                    lambda params: loop.post_kl_from_params(data, params)) if gauss_newton else None,
        loss_of_outputs=lambda params: surrogate_of_post_params(data, params),
        kl_outputs_part=(outputs_part, divergence_part) if gauss_newton else None,
        finite_difference_eps=(cfg.finite_difference_eps
                               if cfg.fisher_product == "finite_difference" else None),
    )
    metrics = {"loss_before": info.loss_before, "loss_after": info.loss_after, "kl": info.kl,
               "accepted": info.accepted.astype(jnp.float32),
               "backtracks": info.backtracks.astype(jnp.float32)}
    return params, state.opt_state, metrics


def fisher_block_tasks(cfg: MAMLConfig) -> int:
    """Tasks per block of the passes through the inner update: the configured number, else
    ``auto_block_tasks`` (2 on a CPU, 0 = one pass on an accelerator); 0 with
    ``fisher_task_chunks > 1``, whose chunks replace blocks."""
    if cfg.fisher_block_tasks:
        return cfg.fisher_block_tasks
    return 0 if cfg.fisher_task_chunks > 1 else auto_block_tasks(cfg.meta_batch_size)


def make_gradient_meta_learner(env, task_dist, cfg: MAMLConfig, policy=None,
                               learned_step_sizes: bool = False) -> MetaLearner:
    """MAML's meta-learner; with ``learned_step_sizes`` the inner step sizes are meta-parameters."""
    loop = make_inner_loop(env, task_dist, cfg, policy, learned_step_sizes)

    def meta_step(state: MetaState, key):
        data = loop.collect(state.params, key, fisher_block_tasks(cfg))
        params, opt_state, outer = outer_update(loop, cfg, state, data)
        metrics = {**adaptation_metrics(loop, params, data), **outer}
        return MetaState(params, opt_state, state.key, state.step + 1), metrics

    def init(key) -> MetaState:
        init_key, state_key = jax.random.split(key)
        params = loop.policy.init(init_key, jnp.zeros((1, env.observation_size)))
        if learned_step_sizes:
            step_sizes = jax.tree.map(lambda p: jnp.full_like(p, cfg.inner_lr), params)
            params = {"policy": params, "step_size": step_sizes}
        opt_state = optax.adam(cfg.outer_lr).init(params) if cfg.outer_optimizer == "adam" else optax.EmptyState()
        return MetaState(params, opt_state, state_key, jnp.zeros((), jnp.int32))

    return MetaLearner(init=init, meta_step=meta_step, **gradient_learner_api(loop, loop.policy.apply))


def make_maml(env, task_dist, config: MAMLConfig = MAMLConfig(), policy=None) -> MetaLearner:
    """Build MAML's pure functions for ``env`` and its task distribution.

    Example:
      >>> env, tasks = metajax.make("point-nav-v1")
      >>> learner = make_maml(env, tasks, MAMLConfig(meta_batch_size=20))
      >>> state = learner.init(jax.random.key(0))
      >>> state, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    """
    require_config(config, MAMLConfig)
    return make_gradient_meta_learner(env, task_dist, config, policy)


def _task_chunk(data, index, num_chunks: int):
    """Chunk ``index`` of ``num_chunks`` equal slices along the task axis of every leaf."""
    def take(x):
        size = x.shape[0] // num_chunks
        return jax.lax.dynamic_slice_in_dim(x, index * size, size, axis=0)
    return jax.tree.map(take, data)
