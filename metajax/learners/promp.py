"""ProMP (Rothfuss, Lee, Clavera, Asfour & Abbeel, "ProMP: Proximal Meta-Policy Search", ICLR 2019).

Inner loop: policy-gradient steps on the low-variance-curvature objective (``estimator="lvc"``).
Outer loop: ``promp_steps`` Adam steps per meta-iteration on the same data, each minimising, per
task, PPO's clipped surrogate of the post-update policy (ratios against the policy that sampled the
post-update data, differentiated through the adaptation) plus ``eta * KL(pi_theta_o || pi_theta)``
on the pre-update data (the inner-step KL penalty; ``theta_o`` are the sampling parameters).
With ``adaptive_kl_penalty`` ``eta`` halves/doubles when that KL is below/above
``target_inner_kl`` / 1.5 or x 1.5 (the paper's rule).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from metajax import losses
from metajax.config import option
from metajax.estimators import ESTIMATORS
from metajax.learners.inner_loop import (
    InnerLoopConfig, MetaBatch, adaptation_metrics, auto_block_tasks, gradient_learner_api,
    make_inner_loop, map_task_blocks, require_config,
)
from metajax.types import MetaLearner, MetaState


@dataclasses.dataclass(frozen=True)
class ProMPConfig(InnerLoopConfig):
    inner_lr: float = option(0.1, low=0.0, low_open=True, help="inner step size alpha")
    estimator: str = option("lvc", choices=ESTIMATORS, help="inner objective (ProMP: lvc)")
    outer_lr: float = option(1e-3, low=0.0, low_open=True, help="Adam step size")
    promp_steps: int = option(5, low=1, help="outer Adam steps per meta-iteration")
    clip_eps: float = option(0.3, low=0.0, low_open=True, high=1.0, help="PPO ratio clip")
    inner_kl_penalty: float = option(5e-4, low=0.0, help="initial KL penalty eta")
    adaptive_kl_penalty: bool = option(False, help="adapt eta towards target_inner_kl")
    target_inner_kl: float = option(0.01, low=0.0, low_open=True, help="target of the adaptive rule")


def make_promp(env, task_dist, config: ProMPConfig = ProMPConfig(), policy=None) -> MetaLearner:
    """Build ProMP's pure functions (``init / adapt / meta_step / make_policy``)."""
    require_config(config, ProMPConfig)
    cfg = config
    loop = make_inner_loop(env, task_dist, cfg, policy)
    adam = optax.adam(cfg.outer_lr)

    block_tasks = auto_block_tasks(cfg.meta_batch_size)  # passes through the inner update in turn

    def meta_step(state: MetaState, key):
        adam_state, eta = state.opt_state
        sampled = state.params
        data = loop.collect(sampled, key, block_tasks)

        def block_terms(params, part: MetaBatch):
            """Mean clipped surrogate, inner-step KL and post-update KL of a block of tasks."""
            log_probs, post_kl = loop.post_log_prob(params, part)
            clipped = jax.vmap(lambda *a: losses.ppo_clip_loss(*a, clip=cfg.clip_eps))(
                log_probs, part.post.log_prob, part.post_advantages, part.post.valid)
            return jnp.mean(clipped), loop.inner_kl(params, sampled, part), jnp.mean(post_kl)

        def objective(params):
            blocks = map_task_blocks(lambda part: block_terms(params, part), data, block_tasks)
            clipped, inner_kl, post_kl = (jnp.mean(x) for x in blocks)  # equal blocks: overall means
            return clipped + eta * inner_kl, (clipped, inner_kl, post_kl)

        def outer_step(carry, _):
            params, opt = carry
            grads, aux = jax.grad(objective, has_aux=True)(params)
            updates, opt = adam.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt), aux

        (params, adam_state), (clip_losses, _, _) = jax.lax.scan(
            outer_step, (sampled, adam_state), None, length=cfg.promp_steps)
        _, (clip_after, inner_kl, post_kl) = objective(params)
        if cfg.adaptive_kl_penalty:
            eta = jnp.where(inner_kl < cfg.target_inner_kl / 1.5, eta / 2.0,
                            jnp.where(inner_kl > cfg.target_inner_kl * 1.5, eta * 2.0, eta))
        metrics = {**adaptation_metrics(loop, params, data), "loss_before": clip_losses[0],
                   "loss_after": clip_after, "inner_kl": inner_kl, "kl": post_kl, "kl_penalty": eta}
        return MetaState(params, (adam_state, eta), state.key, state.step + 1), metrics

    def init(key) -> MetaState:
        init_key, state_key = jax.random.split(key)
        params = loop.policy.init(init_key, jnp.zeros((1, env.observation_size)))
        opt_state = (adam.init(params), jnp.asarray(cfg.inner_kl_penalty, jnp.float32))
        return MetaState(params, opt_state, state_key, jnp.zeros((), jnp.int32))

    return MetaLearner(init=init, meta_step=meta_step, **gradient_learner_api(loop, loop.policy.apply))
