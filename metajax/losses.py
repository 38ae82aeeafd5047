"""Pure loss and return functions on time-major ``[T, B]`` data with validity masks.

``valid[t, b]`` is 1 while episode ``b`` is running (the step that ends it included) and 0 after;
the value after the last valid step is taken as 0 (episode end), as in rllab/MAML.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    """``sum(x * valid) / max(sum(valid), 1)`` over all axes."""
    return jnp.sum(x * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def discounted_returns(rewards: jax.Array, valid: jax.Array, discount: float) -> jax.Array:
    """``G_t = r_t + discount * G_{t+1}`` within each episode, 0 after it: ``[T, B] -> [T, B]``."""

    def body(next_return, inputs):
        reward, mask = inputs
        value = mask * (reward + discount * next_return)
        return value, value

    _, returns = jax.lax.scan(body, jnp.zeros_like(rewards[0]), (rewards, valid), reverse=True)
    return returns


def gae_advantages(rewards, values, valid, discount: float, gae_lambda: float) -> jax.Array:
    """Generalised advantage estimation (Schulman et al. 2016): ``[T, B] -> [T, B]``.

    ``delta_t = r_t + discount * V_{t+1} - V_t`` with ``V_{t+1} = 0`` once the episode ended;
    ``A_t = delta_t + discount * lambda * A_{t+1}``. With ``lambda = 1``, ``A = G - V``.
    """
    next_valid = jnp.concatenate([valid[1:], jnp.zeros_like(valid[:1])], axis=0)
    next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])], axis=0) * next_valid
    deltas = (rewards + discount * next_values - values) * valid

    def body(next_advantage, inputs):
        delta, mask_next, mask = inputs
        advantage = mask * (delta + discount * gae_lambda * mask_next * next_advantage)
        return advantage, advantage

    _, advantages = jax.lax.scan(
        body, jnp.zeros_like(rewards[0]), (deltas, next_valid, valid), reverse=True
    )
    return advantages


def normalize(advantages: jax.Array, valid: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Centre and scale over the valid entries of the batch (rllab's ``center_adv``)."""
    mean = masked_mean(advantages, valid)
    std = jnp.sqrt(masked_mean(jnp.square(advantages - mean), valid))
    return (advantages - mean) / (std + eps) * valid


def reinforce_loss(log_probs, advantages, valid) -> jax.Array:
    """REINFORCE with baseline: ``-mean_valid(log pi(a|s) * A)``; ``A`` is treated as constant."""
    return -masked_mean(log_probs * jax.lax.stop_gradient(advantages), valid)


def importance_surrogate(log_probs, old_log_probs, advantages, valid) -> jax.Array:
    """TRPO's surrogate ``-mean_valid(pi/pi_old * A)``; equals REINFORCE in gradient at pi = pi_old."""
    ratio = jnp.exp(log_probs - jax.lax.stop_gradient(old_log_probs))
    return -masked_mean(ratio * jax.lax.stop_gradient(advantages), valid)


def ppo_clip_loss(log_probs, old_log_probs, advantages, valid, clip: float = 0.2) -> jax.Array:
    """PPO's clipped surrogate ``-mean_valid(min(rho A, clip(rho, 1-eps, 1+eps) A))``."""
    ratio = jnp.exp(log_probs - jax.lax.stop_gradient(old_log_probs))
    advantages = jax.lax.stop_gradient(advantages)
    clipped = jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return -masked_mean(jnp.minimum(ratio * advantages, clipped), valid)


def value_loss(values, returns, valid) -> jax.Array:
    """``0.5 * mean_valid((V - G)^2)`` for a learned value head."""
    return 0.5 * masked_mean(jnp.square(values - jax.lax.stop_gradient(returns)), valid)


def mean_kl(old_dist, new_dist, valid) -> jax.Array:
    """``mean_valid KL(old || new)``; ``old_dist`` is held constant."""
    old_dist = jax.tree.map(jax.lax.stop_gradient, old_dist)
    return masked_mean(old_dist.kl_divergence(new_dist), valid)
