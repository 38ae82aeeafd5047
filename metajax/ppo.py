"""Single-task PPO (Schulman et al. 2017), pure JAX: the trainer behind the oracle rows.

``train_ppo(env, task, key, config) -> (params, metrics)`` is one ``lax.scan`` over updates, so
``jax.vmap`` over tasks trains one oracle per test task in a single program. Each update collects
``rollout_steps`` steps from ``num_envs`` auto-resetting envs of the task, computes GAE with a
learned value head, and runs ``epochs`` passes of ``minibatches`` clipped-surrogate Adam steps.
A time-limit truncation ends the episode but is not terminal: its reward gets ``gamma V(s_final)``
added, the value of the observation the episode was cut off in (partial-episode bootstrapping,
Pardo et al. 2018), so the value head, which does not see the time, is not taught that the
episode ends there. Observations are not normalised.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from metajax import losses
from metajax.config import Config, option
from metajax.envs.wrappers import AutoReset, EpisodeStats
from metajax.networks import default_policy


# bumped whenever a change makes the trainer compute something else for the same config (cached
# results, e.g. the locomotion experiments' oracles, are keyed on it): 2 = truncations bootstrapped
REVISION = 2


@dataclasses.dataclass(frozen=True)
class PPOConfig(Config):
    num_envs: int = option(32, low=1, help="parallel envs of the task")
    rollout_steps: int = option(64, low=1, help="steps per env per update")
    updates: int = option(100, low=1, help="PPO updates")
    epochs: int = option(4, low=1, help="passes over each batch")
    minibatches: int = option(4, low=1, help="minibatches per pass")
    learning_rate: float = option(3e-4, low=0.0, low_open=True, help="Adam step size")
    discount: float = option(0.99, low=0.0, high=1.0, help="discount gamma")
    gae_lambda: float = option(0.95, low=0.0, high=1.0, help="GAE lambda")
    clip: float = option(0.2, low=0.0, low_open=True, high=1.0, help="ratio clip")
    value_coef: float = option(0.5, low=0.0, help="value loss weight")
    entropy_coef: float = option(0.0, low=0.0, help="entropy bonus weight")
    max_grad_norm: float = option(0.5, low=0.0, low_open=True, help="gradient clipping")
    hidden_sizes: tuple = option((64, 64), low=1, help="policy and value MLP widths")

    def __post_init__(self):
        super().__post_init__()
        if (self.num_envs * self.rollout_steps) % self.minibatches:
            raise ValueError(f"PPOConfig.minibatches must divide num_envs * rollout_steps = "
                             f"{self.num_envs * self.rollout_steps}, got {self.minibatches}")


class PPOMetrics(NamedTuple):
    episode_return: jax.Array  # mean return of the last completed episodes [updates]
    loss: jax.Array


def make_policy(env, config: PPOConfig):
    return default_policy(env, config.hidden_sizes, value_head=True)


def train_ppo(env, task, key, config: PPOConfig = PPOConfig()):
    """Train a policy on one ``task``; returns (params, PPOMetrics with leaves ``[updates]``)."""
    cfg = config
    policy = make_policy(env, cfg)
    wrapped = EpisodeStats(AutoReset(env))
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))
    init_key, reset_key, loop_key = jax.random.split(key, 3)
    params = policy.init(init_key, jnp.zeros((1, env.observation_size)))
    reset = jax.vmap(wrapped.reset, in_axes=(0, None))
    step = jax.vmap(wrapped.step_with_final_observation, in_axes=(0, 0, 0, None))
    env_state, timestep = reset(jax.random.split(reset_key, cfg.num_envs), task)

    def collect(carry, step_key):
        params, env_state, obs = carry
        act_key, env_key = jax.random.split(step_key)
        dist, value = policy.apply(params, obs)
        action, log_prob = dist.sample_and_log_prob(seed=act_key)
        env_state, ts, final_obs = step(jax.random.split(env_key, cfg.num_envs), env_state, action, task)
        _, final_value = policy.apply(params, final_obs)
        reward = bootstrap_truncation(ts.reward, ts.terminated, ts.truncated, final_value, cfg.discount)
        data = (obs, action, log_prob, value, reward, ts.done.astype(jnp.float32))
        return (params, env_state, ts.observation), data

    def loss_fn(params, batch):
        obs, action, old_log_prob, advantage, target = batch
        dist, value = policy.apply(params, obs)
        return clipped_objective(dist, value, action, old_log_prob, advantage, target, cfg)

    def update(carry, update_key):
        params, opt_state, env_state, obs = carry
        collect_key, shuffle_key = jax.random.split(update_key)
        (_, env_state, last_obs), data = jax.lax.scan(
            collect, (params, env_state, obs), jax.random.split(collect_key, cfg.rollout_steps))
        obs_t, action, log_prob, value, reward, done = data  # [T, N, ...]
        _, last_value = policy.apply(params, last_obs)
        advantage = _gae(reward, value, done, last_value, cfg.discount, cfg.gae_lambda)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]),
                            (obs_t, action, log_prob, advantage, advantage + value))
        params, opt_state, (loss, _) = ppo_epochs(loss_fn, optimizer, params, opt_state, flat, shuffle_key,
                                                  cfg.epochs, cfg.minibatches)
        metrics = PPOMetrics(jnp.mean(env_state.last_return), jnp.mean(loss))
        return (params, opt_state, env_state, last_obs), metrics

    carry = (params, optimizer.init(params), env_state, timestep.observation)
    (params, *_), metrics = jax.lax.scan(update, carry, jax.random.split(loop_key, cfg.updates))
    return params, metrics


def clipped_objective(dist, value, action, old_log_prob, advantage, target, cfg):
    """PPO's loss on one minibatch (any leading shape): the clipped surrogate on batch-normalised
    advantages + ``cfg.value_coef`` x value loss - ``cfg.entropy_coef`` x entropy.

    Returns ``(total, info)`` with the policy loss, value loss, entropy and approximate KL.
    """
    log_prob = dist.log_prob(action)
    ones = jnp.ones_like(log_prob)
    advantage = losses.normalize(advantage, ones)
    policy_loss = losses.ppo_clip_loss(log_prob, old_log_prob, advantage, ones, cfg.clip)
    value_loss = losses.value_loss(value, target, ones)
    entropy = jnp.mean(dist.entropy())
    total = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                   "approx_kl": jnp.mean(old_log_prob - log_prob)}


def ppo_epochs(loss_fn, optimizer, params, opt_state, batch, key, epochs: int, minibatches: int):
    """``epochs`` shuffled passes of ``minibatches`` optimiser steps over ``batch`` (leaves ``[N, ...]``,
    shuffled along N). ``loss_fn(params, minibatch) -> (loss, info)``; returns
    ``(params, opt_state, (loss, info))`` with leaves ``[epochs, minibatches]``."""
    size = jax.tree.leaves(batch)[0].shape[0]

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, size)
        shuffled = jax.tree.map(lambda x: x[order].reshape((minibatches, -1) + x.shape[1:]), batch)

        def minibatch(carry, mb):
            params, opt_state = carry
            (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, info)

        return jax.lax.scan(minibatch, carry, shuffled)

    (params, opt_state), history = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))
    return params, opt_state, history


def bootstrap_truncation(reward, terminated, truncated, final_value, discount):
    """``reward + discount * final_value`` where an episode was truncated, not terminated (any shape)."""
    return reward + discount * jnp.where(truncated & ~terminated, final_value, 0.0)


def _gae(reward, value, done, last_value, discount, gae_lambda):
    """GAE over a continuing batch ``[T, N]`` where ``done`` ends an episode (no bootstrap past it)."""
    next_value = jnp.concatenate([value[1:], last_value[None]], axis=0)

    def body(next_advantage, inputs):
        r, v, nv, d = inputs
        delta = r + discount * nv * (1.0 - d) - v
        advantage = delta + discount * gae_lambda * (1.0 - d) * next_advantage
        return advantage, advantage

    _, advantage = jax.lax.scan(body, jnp.zeros_like(last_value), (reward, value, next_value, done),
                                reverse=True)
    return advantage
