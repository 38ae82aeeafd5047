"""MAML for RL (Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017).

Inner loop: ``K`` vanilla policy-gradient steps ``phi <- phi - alpha * grad L_in(phi)`` with
``L_in = -mean_valid(log pi_phi(a|s) * A)`` on ``B`` rollouts of the task, advantages from the
linear feature baseline (GAE), centred and scaled per batch.
Outer loop: TRPO on the post-update rollouts, differentiating through the inner updates (second
order; ``first_order=True`` stops the gradient through the inner gradient), with the mean KL of the
post-update policy as the trust region; or one Adam step on the same surrogate.
The meta-gradient estimator is the MAML paper's: the pre-update data's dependence on theta is
not differentiated (no sampling-distribution term).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metajax import baselines, losses
from metajax.config import Config, option
from metajax.networks import GaussianMLPPolicy
from metajax.optim import trpo_step
from metajax.rollout import episode_returns, policy_act, rollout
from metajax.types import MetaLearner, MetaState, Transition


@dataclasses.dataclass(frozen=True)
class MAMLConfig(Config):
    meta_batch_size: int = option(40, low=1, help="tasks per meta-iteration (M)")
    rollouts_per_task: int = option(20, low=1, help="episodes per task per adaptation step (B)")
    inner_steps: int = option(1, low=1, high=10, help="inner policy-gradient steps (K)")
    inner_lr: float = option(0.5, low=0.0, low_open=True, help="inner step size alpha")
    first_order: bool = option(False, help="drop second-order terms of the meta-gradient")
    outer_optimizer: str = option("trpo", choices=("trpo", "adam"), help="outer update rule")
    outer_lr: float = option(1e-3, low=0.0, low_open=True, help="Adam step size (adam only)")
    max_kl: float = option(0.01, low=0.0, low_open=True, help="TRPO mean-KL limit")
    cg_iters: int = option(10, low=1, help="conjugate-gradient iterations")
    cg_damping: float = option(1e-5, low=0.0, help="damping added to the Fisher product")
    max_backtracks: int = option(15, low=1, help="line-search candidates")
    backtrack_ratio: float = option(0.8, low=0.0, low_open=True, high=0.99, help="line-search shrink")
    discount: float = option(0.99, low=0.0, high=1.0, help="discount gamma")
    gae_lambda: float = option(1.0, low=0.0, high=1.0, help="GAE lambda")
    normalize_advantages: bool = option(True, help="centre and scale advantages per batch")
    remat: bool = option(False, help="recompute the inner update in the outer step (less memory)")
    fisher_task_chunks: int = option(1, low=1, help="compute the Fisher product over this many "
                                     "task chunks in turn (less memory, more compute)")

    def __post_init__(self):
        super().__post_init__()
        if self.meta_batch_size % self.fisher_task_chunks:
            raise ValueError(
                f"MAMLConfig.fisher_task_chunks must divide meta_batch_size={self.meta_batch_size}, "
                f"got {self.fisher_task_chunks}"
            )
    hidden_sizes: tuple = option((100, 100), low=1, help="policy MLP widths")
    init_log_std: float = option(0.0, low=-5.0, high=2.0, help="initial policy log-std")


class MetaBatch(NamedTuple):
    """One meta-iteration's data, leaves ``[M, ...]``: the fast weights it was collected with, the
    inner data (K batches and their advantages), and the post-update batch and advantages."""

    adapted: Any
    inner_data: tuple
    post: Transition
    post_advantages: jax.Array


class MAMLParts(NamedTuple):
    """MAML's building blocks, exposed for tests and for learners that reuse them."""

    policy: Any
    advantages: Callable  # batch [T, B] -> advantages [T, B]
    inner_update: Callable  # (params, batch, adv) -> params after one inner step
    adapt_collect: Callable  # (params, task, key) -> (adapted, inner_data)
    collect: Callable  # (params, key) -> MetaBatch over a fresh meta-batch of tasks
    surrogate: Callable  # (params, MetaBatch) -> outer loss, differentiable through adaptation
    kl: Callable  # (params, MetaBatch) -> mean KL(post-update policy at collection || at params)
    surrogate_and_kl: Callable  # (params, MetaBatch) -> (surrogate, kl) sharing one forward pass


def make_maml_parts(env, task_dist, config: MAMLConfig, policy=None) -> MAMLParts:
    """The pure pieces MAML is made of (see ``make_maml``)."""
    cfg = config
    if policy is None:
        policy = GaussianMLPPolicy(env.action_size, cfg.hidden_sizes, init_log_std=cfg.init_log_std)

    def advantages(batch: Transition) -> jax.Array:
        """Baseline-corrected advantages of one task's batch ``[T, B]``."""
        returns = losses.discounted_returns(batch.reward, batch.valid, cfg.discount)
        values = baselines.fit_predict(batch.observation, batch.time, returns, batch.valid)
        adv = losses.gae_advantages(batch.reward, values, batch.valid, cfg.discount, cfg.gae_lambda)
        return losses.normalize(adv, batch.valid) if cfg.normalize_advantages else adv

    def inner_loss(params, batch: Transition, adv) -> jax.Array:
        dist, _ = policy.apply(params, batch.observation)
        return losses.reinforce_loss(dist.log_prob(batch.action), adv, batch.valid)

    def inner_update(params, batch: Transition, adv, lr_scale=1.0):
        grads = jax.grad(inner_loss)(params, batch, adv)
        if cfg.first_order:
            grads = jax.lax.stop_gradient(grads)
        return jax.tree.map(lambda p, g: p - lr_scale * cfg.inner_lr * g, params, grads)

    def sample(params, task, key) -> Transition:
        return rollout(env, policy_act(policy.apply, params), task, key, cfg.rollouts_per_task)

    def adapt_collect(params, task, key):
        """K inner steps on fresh rollouts; returns the adapted params and the data used."""
        batches, advs = [], []
        adapted = params
        for step_key in jax.random.split(key, cfg.inner_steps):
            batch = sample(adapted, task, step_key)
            adv = advantages(batch)
            adapted = inner_update(adapted, batch, adv)
            batches.append(batch)
            advs.append(adv)
        return adapted, (batches, advs)

    def replay(params, inner_data):
        """The adapted params as a differentiable function of ``params`` for fixed inner data."""
        for batch, adv in zip(*inner_data):
            params = inner_update(params, batch, adv)
        return params

    def collect_task(params, task, key):
        adapt_key, post_key = jax.random.split(key)
        adapted, inner_data = adapt_collect(params, task, adapt_key)
        post = sample(adapted, task, post_key)
        return adapted, inner_data, post, advantages(post)

    outer_replay = jax.checkpoint(replay) if cfg.remat else replay

    def task_outer(params, old_adapted, inner_data, post: Transition, post_adv):
        """(surrogate, KL) of one task's post-update policy, differentiable through adaptation."""
        new_dist, _ = policy.apply(outer_replay(params, inner_data), post.observation)
        old_dist, _ = policy.apply(old_adapted, post.observation)
        logp = new_dist.log_prob(post.action)
        surrogate = losses.importance_surrogate(logp, post.log_prob, post_adv, post.valid)
        return surrogate, losses.mean_kl(old_dist, new_dist, post.valid)

    def collect(params, key) -> MetaBatch:
        task_key, rollout_key = jax.random.split(key)
        tasks = jax.vmap(task_dist.sample)(jax.random.split(task_key, cfg.meta_batch_size))
        keys = jax.random.split(rollout_key, cfg.meta_batch_size)
        batch = jax.vmap(collect_task, in_axes=(None, 0, 0))(params, tasks, keys)
        return MetaBatch(*jax.lax.stop_gradient(batch))

    def surrogate_and_kl(params, data: MetaBatch):
        per_task = jax.vmap(task_outer, in_axes=(None, 0, 0, 0, 0))
        surrogates, kls = per_task(params, *data)
        return jnp.mean(surrogates), jnp.mean(kls)

    surrogate = lambda params, data: surrogate_and_kl(params, data)[0]
    kl = lambda params, data: surrogate_and_kl(params, data)[1]
    return MAMLParts(policy, advantages, inner_update, adapt_collect, collect, surrogate, kl,
                     surrogate_and_kl)


def make_maml(env, task_dist, config: MAMLConfig = MAMLConfig(), policy=None) -> MetaLearner:
    """Build MAML's pure functions for ``env`` and its task distribution.

    Example:
      >>> env, tasks = metajax.make("point-nav-v1")
      >>> learner = make_maml(env, tasks, MAMLConfig(meta_batch_size=20))
      >>> state = learner.init(jax.random.key(0))
      >>> state, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    """
    if not isinstance(config, MAMLConfig):
        raise TypeError(f"config must be a MAMLConfig, got {type(config).__name__}")
    cfg = config
    parts = make_maml_parts(env, task_dist, cfg, policy)
    policy = parts.policy
    outer_adam = optax.adam(cfg.outer_lr)
    chunks = cfg.fisher_task_chunks

    def meta_step(state: MetaState, key):
        data = parts.collect(state.params, key)
        surrogate = lambda params: parts.surrogate(params, data)
        kl = lambda params: parts.kl(params, data)
        if cfg.outer_optimizer == "trpo":
            params, info = trpo_step(
                surrogate, kl, state.params, cfg.max_kl, cfg.cg_iters, cfg.cg_damping,
                cfg.backtrack_ratio, cfg.max_backtracks,
                loss_and_kl_fn=lambda params: parts.surrogate_and_kl(params, data),
                kl_part_fn=lambda params, i: parts.kl(params, _task_chunk(data, i, chunks)),
                num_parts=chunks,
            )
            opt_state = state.opt_state
            outer = {"loss_before": info.loss_before, "loss_after": info.loss_after,
                     "kl": info.kl, "accepted": info.accepted.astype(jnp.float32),
                     "backtracks": info.backtracks.astype(jnp.float32)}
        else:
            loss, grads = jax.value_and_grad(surrogate)(state.params)
            updates, opt_state = outer_adam.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            outer = {"loss_before": loss, "kl": kl(params)}
        metrics = {
            "pre_return": jnp.mean(jax.vmap(episode_returns)(data.inner_data[0][0])),
            "post_return": jnp.mean(jax.vmap(episode_returns)(data.post)),
            "policy_std": jnp.mean(jnp.exp(params["params"]["log_std"]))
            if "log_std" in params.get("params", {}) else jnp.zeros(()),
            **outer,
        }
        return MetaState(params, opt_state, state.key, state.step + 1), metrics

    def init(key) -> MetaState:
        init_key, state_key = jax.random.split(key)
        params = policy.init(init_key, jnp.zeros((1, env.observation_size)))
        opt_state = outer_adam.init(params) if cfg.outer_optimizer == "adam" else optax.EmptyState()
        return MetaState(params, opt_state, state_key, jnp.zeros((), jnp.int32))

    def adapt(params, task, key):
        """Fast weights after ``K`` inner steps on ``task`` (the inner data is sampled here)."""
        return parts.adapt_collect(params, task, key)[0]

    def adapt_step(params, adapted, batch: Transition, lr_scale=1.0):
        del params
        return parts.inner_update(adapted, batch, parts.advantages(batch), lr_scale)

    def make_policy(params, adapted=None):
        weights = params if adapted is None else adapted
        return lambda obs: policy.apply(weights, obs)

    return MetaLearner(
        init=init,
        adapt=adapt,
        meta_step=meta_step,
        make_policy=make_policy,
        adapt_step=adapt_step,
        start_adaptation=lambda params: params,
    )


def _task_chunk(data, index, num_chunks: int):
    """Chunk ``index`` of ``num_chunks`` equal slices along the task axis of every leaf."""
    def take(x):
        size = x.shape[0] // num_chunks
        return jax.lax.dynamic_slice_in_dim(x, index * size, size, axis=0)
    return jax.tree.map(take, data)
