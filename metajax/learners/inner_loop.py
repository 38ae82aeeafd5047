"""The inner loop shared by the gradient-based meta-learners (MAML, FO-MAML, Meta-SGD, ProMP, Reptile).

Inner loop: ``K`` policy-gradient steps ``phi <- phi - alpha * grad L_in(phi)`` on ``B`` fresh
rollouts of the task per step, advantages from the linear feature baseline (or plain returns),
centred and scaled per batch; ``L_in`` is one of the estimator objectives of
``metajax.estimators``. ``alpha`` is the configured scalar, or a learned per-parameter tree
(Meta-SGD). Everything here is a pure function of (meta-parameters, data); the learners differ in
the outer step they take on top.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from metajax import baselines, losses
from metajax.config import Config, option
from metajax.estimators import ESTIMATORS, inner_objective
from metajax.networks import default_policy, distribution_from_params, distribution_params
from metajax.optim import OutputLinearization
from metajax.rollout import (
    StepBudgetSampler, batch_sampler_mask, compact_steps, episode_returns, mean_episode_return,
    policy_act, rollout, step_budget_mask,
)
from metajax.types import Transition


@dataclasses.dataclass(frozen=True)
class InnerLoopConfig(Config):
    meta_batch_size: int = option(40, low=1, help="tasks per meta-iteration (M)")
    rollouts_per_task: int = option(20, low=1, help="episodes per task per adaptation step (B)")
    inner_steps: int = option(1, low=1, high=10, help="inner policy-gradient steps (K)")
    inner_lr: float = option(0.5, low=0.0, low_open=True, help="inner step size alpha")
    first_order: bool = option(False, help="drop second-order terms of the meta-gradient")
    estimator: str = option("maml", choices=ESTIMATORS, help="inner objective / meta-gradient "
                            "estimator (see metajax.estimators)")
    baseline: str = option("linear", choices=("linear", "none"), help="advantage baseline")
    discount: float = option(0.99, low=0.0, high=1.0, help="discount gamma")
    gae_lambda: float = option(1.0, low=0.0, high=1.0, help="GAE lambda")
    normalize_advantages: bool = option(True, help="centre and scale advantages per batch")
    post_episode_pool: int = option(0, low=0, help="0: the post-update batch is B episodes per task; "
                                    "P > 0: drawn by one of rllab's samplers from a pool of P "
                                    "episodes per task (see post_sampler_workers)")
    post_sampler_workers: int = option(0, low=0, help="with a pool: 0 = rllab's vectorised sampler "
                                       "(one lockstep env per task until the finished episodes hold "
                                       "B x H x M steps, unfinished ones dropped); W > 0 = rllab's "
                                       "parallel batch sampler with W workers (whole episodes per task "
                                       "until B x H steps; the MAML authors' n_parallel > 1 runs)")
    remat: bool = option(False, help="recompute the inner update in the outer step (less memory)")
    hidden_sizes: tuple = option((100, 100), low=1, help="policy MLP widths")
    init_log_std: float = option(0.0, low=-5.0, high=2.0, help="initial policy log-std")

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        if self.post_sampler_workers and not self.post_episode_pool:
            raise ValueError(f"{name}.post_sampler_workers={self.post_sampler_workers} needs a pool: "
                             "set post_episode_pool to a positive multiple of it")
        if self.post_sampler_workers and self.post_episode_pool % self.post_sampler_workers:
            raise ValueError(f"{name}.post_episode_pool must be a multiple of post_sampler_workers="
                             f"{self.post_sampler_workers}, got {self.post_episode_pool}")


class MetaBatch(NamedTuple):
    """One meta-iteration's data, leaves ``[M, ...]``: the fast weights it was collected with, the
    inner data (K batches and their advantages), and the post-update batch and advantages
    (``[M, T, B]``, or ``[M, N, 1]`` packed steps from the batch sampler)."""

    adapted: Any
    inner_data: tuple
    post: Transition
    post_advantages: jax.Array
    post_pool_short: Any = None  # batch sampler: [M], 1 where the task's episode pool ran out


class InnerLoop(NamedTuple):
    """The pure pieces; ``meta`` is the meta-parameter pytree, ``fast`` the policy's weights."""

    policy: Any
    start: Callable  # meta -> fast weights before adaptation
    advantages: Callable  # batch [T, B] -> advantages [T, B]
    inner_update: Callable  # (meta, fast, batch, adv, lr_scale=1) -> fast after one inner step
    adapt_collect: Callable  # (meta, task, key) -> (adapted, inner_data)
    replay: Callable  # (meta, inner_data) -> [fast before step 1, ..., after step K], differentiable
    collect: Callable  # (meta, key, block_tasks=None) -> MetaBatch over a fresh meta-batch of tasks
    post_log_prob: Callable  # (meta, MetaBatch) -> (new log-probs [M, T, B], KL(old || new) [M])
    inner_kl: Callable  # (meta, old_meta, MetaBatch) -> mean KL of the pre-step policies on inner data
    post_policy_params: Callable  # (meta, MetaBatch) -> post-update distribution parameters [M, ...]
    post_params_linearization: Callable  # (meta, MetaBatch, block_tasks=0) -> its OutputLinearization
    post_kl_from_params: Callable  # (MetaBatch, params) -> mean KL(collection-time || params)


def make_inner_loop(env, task_dist, config: InnerLoopConfig, policy=None,
                    learned_step_sizes: bool = False) -> InnerLoop:
    """Build the inner loop for ``env``. With ``learned_step_sizes`` the meta-parameters are
    ``{"policy": weights, "step_size": tree like weights}`` (Meta-SGD); otherwise the weights."""
    cfg = config
    if policy is None:
        policy = default_policy(env, cfg.hidden_sizes, cfg.init_log_std)

    def start(meta):
        return meta["policy"] if learned_step_sizes else meta

    def advantages(batch: Transition) -> jax.Array:
        """Baseline-corrected advantages of one task's batch ``[T, B]``."""
        returns = losses.discounted_returns(batch.reward, batch.valid, cfg.discount)
        if cfg.baseline == "linear":
            values = baselines.fit_predict(batch.observation, batch.time, returns, batch.valid)
        else:
            values = jnp.zeros_like(returns)
        adv = losses.gae_advantages(batch.reward, values, batch.valid, cfg.discount, cfg.gae_lambda)
        return losses.normalize(adv, batch.valid) if cfg.normalize_advantages else adv

    def flat_distribution_params(fast, observation):
        """Distribution parameters ``[T, B, ...]`` computed on the flattened ``[T * B, O]`` batch
        (2-D matmuls lay out better in XLA than ``[T, B, H]`` ones through the second-order passes)."""
        lead = observation.shape[:-1]
        dist, _ = policy.apply(fast, observation.reshape(-1, observation.shape[-1]))
        return jax.tree.map(lambda x: x.reshape(lead + x.shape[1:]), distribution_params(dist))

    def flat_dist(fast, observation):
        return distribution_from_params(flat_distribution_params(fast, observation))

    def inner_loss(fast, batch: Transition, adv) -> jax.Array:
        log_probs = flat_dist(fast, batch.observation).log_prob(batch.action)
        return inner_objective(cfg.estimator, log_probs, batch.log_prob, adv, batch.valid)

    def inner_update(meta, fast, batch: Transition, adv, lr_scale=1.0):
        grads = jax.grad(inner_loss)(fast, batch, adv)
        if cfg.first_order:
            grads = jax.lax.stop_gradient(grads)
        if learned_step_sizes:
            return jax.tree.map(lambda p, a, g: p - lr_scale * a * g, fast, meta["step_size"], grads)
        return jax.tree.map(lambda p, g: p - lr_scale * cfg.inner_lr * g, fast, grads)

    def sample(fast, task, key, episodes=cfg.rollouts_per_task) -> Transition:
        return rollout(env, policy_act(policy.apply, fast), task, key, episodes)

    def adapt_collect(meta, task, key):
        """K inner steps on fresh rollouts; returns the adapted weights and the data used."""
        batches, advs = [], []
        adapted = start(meta)
        for step_key in jax.random.split(key, cfg.inner_steps):
            batch = sample(adapted, task, step_key)
            adv = advantages(batch)
            adapted = inner_update(meta, adapted, batch, adv)
            batches.append(batch)
            advs.append(adv)
        return adapted, (batches, advs)

    def replay(meta, inner_data):
        fast = [start(meta)]
        for batch, adv in zip(*inner_data):
            fast.append(inner_update(meta, fast[-1], batch, adv))
        return fast

    def collect_task(meta, task, key):
        adapt_key, post_key = jax.random.split(key)
        adapted, inner_data = adapt_collect(meta, task, adapt_key)
        post = sample(adapted, task, post_key, cfg.post_episode_pool or cfg.rollouts_per_task)
        return adapted, inner_data, post

    def step_budget(post: Transition) -> Transition:
        """Mask the post-update pools ``[M, T, P]`` down to rllab's step-budget batch."""
        m, horizon, pool = post.valid.shape
        sampler = StepBudgetSampler(m, cfg.rollouts_per_task * horizon * m, pool)
        valid = jnp.transpose(post.valid, (1, 2, 0)).reshape(horizon, pool * m)  # column k * M + task
        kept, _ = step_budget_mask(valid, sampler)
        return post._replace(valid=post.valid * kept.reshape(pool, m).T[:, None, :])

    def batch_sampler(post: Transition):
        """Each task's post-update pool ``[T, P]`` cut to the parallel batch sampler's episodes, their
        advantages, both packed into ``[N, 1]`` with ``N = B x H + W x H`` (a bound on the kept steps)."""
        horizon, workers = post.valid.shape[0], cfg.post_sampler_workers
        budget = cfg.rollouts_per_task * horizon
        kept, enough = batch_sampler_mask(post.valid, budget, workers)
        post = post._replace(valid=post.valid * kept[None, :])
        (post, adv), filled = compact_steps((post, advantages(post)), post.valid, budget + workers * horizon)
        return post._replace(valid=filled), adv * filled, 1.0 - enough.astype(jnp.float32)

    def collect(meta, key, block_tasks: int | None = None) -> MetaBatch:
        """Rollouts, inner steps and post-update rollouts of a fresh meta-batch, over blocks of
        ``block_tasks`` tasks in turn (None: ``auto_block_tasks``; 0: all tasks at once)."""
        task_key, rollout_key = jax.random.split(key)
        tasks = jax.vmap(task_dist.sample)(jax.random.split(task_key, cfg.meta_batch_size))
        keys = jax.random.split(rollout_key, cfg.meta_batch_size)
        adapted, inner_data, post = vmap_task_blocks(
            lambda task, task_key: collect_task(meta, task, task_key), (tasks, keys),
            auto_block_tasks(cfg.meta_batch_size) if block_tasks is None else block_tasks)
        pool_short = None
        if cfg.post_sampler_workers:
            post, post_advantages, pool_short = jax.vmap(batch_sampler)(post)
        else:
            post = step_budget(post) if cfg.post_episode_pool else post
            post_advantages = jax.vmap(advantages)(post)
        return MetaBatch(*jax.lax.stop_gradient((adapted, inner_data, post, post_advantages, pool_short)))

    adapted_of = jax.checkpoint(lambda m, d: replay(m, d)[-1]) if cfg.remat else (lambda m, d: replay(m, d)[-1])

    def post_policy_params(meta, data: MetaBatch):
        """The post-update policy's distribution parameters at ``meta`` (through the adaptation)."""
        def task(inner_data, post):
            return flat_distribution_params(adapted_of(meta, inner_data), post.observation)
        return jax.vmap(task)(data.inner_data, data.post)

    def task_linearization(meta, inner_data, post):
        """One task's post-update distribution parameters linearised at ``meta``: ``(outputs, steps,
        post_jvp)``. With plain step sizes, ``steps`` are the inner steps' linearisations (fast weights
        to fast weights) and ``post_jvp`` that of the post-update network at the adapted weights;
        otherwise ``steps`` is empty and ``post_jvp`` linearises the whole map from ``meta``."""
        if learned_step_sizes or cfg.remat:
            outputs, post_jvp = jax.linearize(
                lambda m: flat_distribution_params(adapted_of(m, inner_data), post.observation), meta)
            return outputs, [], post_jvp
        fast, steps = start(meta), []
        for batch, adv in zip(*inner_data):
            fast, step_jvp = jax.linearize(lambda f, b=batch, a=adv: inner_update(meta, f, b, a), fast)
            steps.append(step_jvp)
        outputs, post_jvp = jax.linearize(lambda f: flat_distribution_params(f, post.observation), fast)
        return outputs, steps, post_jvp

    def post_params_linearization(meta, data: MetaBatch, block_tasks: int = 0) -> OutputLinearization:
        """``post_policy_params`` linearised at ``meta``: value, ``v -> J v`` and ``u -> J^T u``.

        Each task is linearised once (its residuals ``[M, ...]`` are kept); the products then run over
        blocks of ``block_tasks`` tasks in turn (0: all tasks in one pass), so a product's transient
        activations ``[block, T * B, hidden]`` stay small (in cache on a CPU). With plain step sizes
        each inner step's Jacobian ``I - alpha * Hessian(L_in)`` is symmetric, so ``J^T u`` runs the
        steps' own Hessian-vector products in reverse order instead of transposing them.
        """
        num_tasks = data.post.valid.shape[0]
        primal = meta if (learned_step_sizes or cfg.remat) else start(meta)
        # one vmapped linearisation of all tasks (linearising block by block under lax.map is slower:
        # the residuals are then copied into stacked buffers)
        outputs, steps, post_jvp = jax.vmap(task_linearization, in_axes=(None, 0, 0))(
            meta, data.inner_data, data.post)
        lins = (steps, post_jvp)

        def task_jvp(lin, v):
            task_steps, task_post = lin
            for step_jvp in task_steps:
                v = step_jvp(v)
            return task_post(v)

        def task_vjp(lin, u):
            task_steps, task_post = lin
            cotangent = jax.linear_transpose(task_post, primal)(u)[0]
            for step_jvp in reversed(task_steps):  # each step's Jacobian is its own transpose
                cotangent = step_jvp(cotangent)
            return cotangent

        def jvp(v):
            blocks = map_task_blocks(lambda lin: jax.vmap(task_jvp, in_axes=(0, None))(lin, v), lins,
                                     block_tasks)
            return jax.tree.map(lambda x: x.reshape((num_tasks,) + x.shape[2:]), blocks)

        def vjp(u):
            def block_sum(lin_and_u):
                return jax.tree.map(lambda x: jnp.sum(x, axis=0), jax.vmap(task_vjp)(*lin_and_u))
            return jax.tree.map(lambda x: jnp.sum(x, axis=0), map_task_blocks(block_sum, (lins, u), block_tasks))

        return OutputLinearization(outputs, jvp, vjp)

    def post_kls(data: MetaBatch, params):
        """Per-task KL(collection-time post-update policy || the one given by ``params``) ``[M]``."""
        def task(old_adapted, post, new):
            old_dist = flat_dist(old_adapted, post.observation)
            return losses.mean_kl(old_dist, distribution_from_params(new), post.valid)
        return jax.vmap(task)(data.adapted, data.post, params)

    def post_kl_from_params(data: MetaBatch, params):
        """Mean post-update KL with the new policy given by its parameters (Gauss-Newton form)."""
        return jnp.mean(post_kls(data, params))

    def post_log_prob(meta, data: MetaBatch):
        """Post-update log-probs at ``meta`` (through the adaptation) and the per-task KL."""
        params = post_policy_params(meta, data)
        log_prob = lambda p, post: distribution_from_params(p).log_prob(post.action)
        return jax.vmap(log_prob)(params, data.post), post_kls(data, params)

    def task_inner_kl(meta, old_meta, inner_data):
        new, old = replay(meta, inner_data), replay(old_meta, inner_data)
        kls = []
        for k, batch in enumerate(inner_data[0]):
            new_dist = flat_dist(new[k], batch.observation)
            old_dist = flat_dist(old[k], batch.observation)
            kls.append(losses.mean_kl(old_dist, new_dist, batch.valid))
        return jnp.mean(jnp.stack(kls))

    def inner_kl(meta, old_meta, data: MetaBatch):
        old_meta = jax.lax.stop_gradient(old_meta)
        return jnp.mean(jax.vmap(task_inner_kl, in_axes=(None, None, 0))(meta, old_meta, data.inner_data))

    return InnerLoop(policy, start, advantages, inner_update, adapt_collect, replay, collect,
                     post_log_prob, inner_kl, post_policy_params, post_params_linearization,
                     post_kl_from_params)


def map_task_blocks(fn: Callable, tasks, block_tasks: int = 0):
    """``fn`` on consecutive blocks of ``block_tasks`` tasks of the pytree ``tasks`` (leaves
    ``[M, ...]``), one block after another under ``lax.map``; its outputs stacked ``[M / block, ...]``.
    ``block_tasks`` 0 (or ``M``): one call on all tasks, outputs ``[1, ...]``. Small blocks keep the
    activations ``[block, T * B, hidden]`` of a pass through the inner update in a CPU's cache."""
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    if block_tasks in (0, num_tasks):
        return jax.tree.map(lambda x: x[None], fn(tasks))
    if num_tasks % block_tasks:
        raise ValueError(f"block_tasks={block_tasks} must divide the number of tasks {num_tasks}")
    split = lambda x: x.reshape((num_tasks // block_tasks, block_tasks) + x.shape[1:])  # noqa: E731
    return jax.lax.map(fn, jax.tree.map(split, tasks))


def vmap_task_blocks(fn: Callable, tasks, block_tasks: int = 0):
    """``jax.vmap(fn)(*tasks)`` computed over blocks of ``block_tasks`` tasks in turn
    (``map_task_blocks``); outputs ``[M, ...]`` as the plain vmap's."""
    blocks = map_task_blocks(lambda part: jax.vmap(fn)(*part), tasks, block_tasks)
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), blocks)


def auto_block_tasks(num_tasks: int) -> int:
    """Tasks per block of the passes through the inner update when not configured: 2 on a CPU
    (1 for an odd count), where a block's ``[block, T * B, hidden]`` activations stay in cache;
    0 (all tasks in one pass) on a GPU/TPU, where one pass keeps the device busy (README,
    throughput)."""
    if jax.default_backend() != "cpu":
        return 0
    return 2 if num_tasks % 2 == 0 else 1


def require_config(config, cls):
    """``config`` if it is a ``cls``; else a TypeError naming the expected class."""
    if not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    return config


def adaptation_metrics(loop: InnerLoop, meta, data: MetaBatch) -> dict:
    """Mean episode return before adaptation and after it, and the policy's mean std if Gaussian."""
    fast = loop.start(meta)
    log_std = fast.get("params", {}).get("log_std") if isinstance(fast, dict) else None
    metrics = {
        "pre_return": jnp.mean(jax.vmap(episode_returns)(data.inner_data[0][0])),
        "post_return": jnp.mean(jax.vmap(mean_episode_return)(data.post)),
        "policy_std": jnp.zeros(()) if log_std is None else jnp.mean(jnp.exp(log_std)),
    }
    if data.post_pool_short is not None:
        metrics["post_pool_short"] = jnp.mean(data.post_pool_short)
    return metrics


def gradient_learner_api(loop: InnerLoop, policy_apply: Callable) -> dict:
    """``adapt``, ``adapt_step``, ``make_policy`` and ``start_adaptation`` shared by these learners."""

    def adapt(meta, task, key):
        """Fast weights after ``K`` inner steps on ``task`` (the inner data is sampled here)."""
        return loop.adapt_collect(meta, task, key)[0]

    def adapt_step(meta, adapted, batch: Transition, lr_scale=1.0):
        return loop.inner_update(meta, adapted, batch, loop.advantages(batch), lr_scale)

    def make_policy(meta, adapted=None):
        weights = loop.start(meta) if adapted is None else adapted
        return lambda obs: policy_apply(weights, obs)

    return dict(adapt=adapt, adapt_step=adapt_step, make_policy=make_policy,
                start_adaptation=loop.start)
