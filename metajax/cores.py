"""Sequence cores for context-based meta-learners (RL^2): a GRU and a causal transformer.

Over one trial (no batch axis; callers vmap) both expose

  ``step(carry, x [I]) -> (carry, features [D])``  acting, one step at a time;

and ``initial_carry(core) -> carry``. ``SeparateCores`` pairs two cores, one for the policy and one
for the value, with features ``(policy, value)``. The transformer also has a parallel training path
``sequence(x [T, I]) -> features [T, D]`` over the whole trial from the initial carry, equal to a scan
of ``step`` (tests/test_rl2.py checks it); for the GRU the scan of ``step`` is the training path. The GRU's carry is its hidden state ``[D]``; the transformer's is a
key/value cache ``[L, T_max, heads, D / heads]`` of the trial so far plus the position, so acting
costs O(t) per step and training attends over the trial in parallel with a causal mask.
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class GRUCore(nn.Module):
    """Dense + ReLU embedding followed by a GRU cell (Cho et al. 2014)."""

    hidden_size: int = 128

    def setup(self):
        self.embed = nn.Dense(self.hidden_size)
        self.cell = nn.GRUCell(self.hidden_size)

    def step(self, carry, x):
        carry, features = self.cell(carry, nn.relu(self.embed(x)))
        return carry, features

    def __call__(self, carry, x):  # used by init: creates every parameter
        return self.step(carry, x)


class KVCache(NamedTuple):
    keys: jax.Array  # [L, T_max, heads, head_dim]
    values: jax.Array  # [L, T_max, heads, head_dim]
    position: jax.Array  # [] int32, the next step's index


class TransformerCore(nn.Module):
    """Pre-LayerNorm causal transformer with learned positions over at most ``max_length`` steps."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_length: int = 100

    def setup(self):
        d = self.hidden_size
        self.embed = nn.Dense(d)
        self.positions = self.param("positions", nn.initializers.normal(0.02), (self.max_length, d))
        self.attn_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
        self.qkv = [nn.Dense(3 * d) for _ in range(self.num_layers)]
        self.attn_out = [nn.Dense(d) for _ in range(self.num_layers)]
        self.mlp_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
        self.mlp_in = [nn.Dense(4 * d) for _ in range(self.num_layers)]
        self.mlp_out = [nn.Dense(d) for _ in range(self.num_layers)]
        self.final_norm = nn.LayerNorm()

    def _split(self, qkv):  # [..., 3D] -> 3 x [..., heads, head_dim]
        shape = qkv.shape[:-1] + (self.num_heads, self.hidden_size // self.num_heads)
        return [part.reshape(shape) for part in jnp.split(qkv, 3, axis=-1)]

    def _mlp(self, layer, h):
        return h + self.mlp_out[layer](nn.gelu(self.mlp_in[layer](self.mlp_norms[layer](h))))

    def step(self, carry: KVCache, x):
        t = carry.position
        h = self.embed(x) + self.positions[t]
        keys, values = carry.keys, carry.values
        scale = (self.hidden_size // self.num_heads) ** -0.5
        visible = jnp.arange(self.max_length) <= t  # [T_max]
        for layer in range(self.num_layers):
            q, k, v = self._split(self.qkv[layer](self.attn_norms[layer](h)))  # [heads, head_dim]
            keys = keys.at[layer, t].set(k)
            values = values.at[layer, t].set(v)
            scores = jnp.einsum("hd,thd->ht", q, keys[layer]) * scale
            weights = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
            attended = jnp.einsum("ht,thd->hd", weights, values[layer]).reshape(-1)
            h = self._mlp(layer, h + self.attn_out[layer](attended))
        return KVCache(keys, values, t + 1), self.final_norm(h)

    def sequence(self, xs):
        length = xs.shape[0]
        h = self.embed(xs) + self.positions[:length]
        scale = (self.hidden_size // self.num_heads) ** -0.5
        causal = jnp.tril(jnp.ones((length, length), bool))  # [query, key]
        for layer in range(self.num_layers):
            q, k, v = self._split(self.qkv[layer](self.attn_norms[layer](h)))  # [T, heads, head_dim]
            scores = jnp.einsum("shd,thd->hst", q, k) * scale
            weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
            attended = jnp.einsum("hst,thd->shd", weights, v).reshape(length, -1)
            h = self._mlp(layer, h + self.attn_out[layer](attended))
        return self.final_norm(h)

    def __call__(self, carry, x):  # used by init: creates every parameter
        return self.step(carry, x)


class SeparateCores(nn.Module):
    """Two cores over the same inputs, one feeding the policy and one the value estimate (as in
    RL^2's TRPO, whose baseline is its own recurrent network): the value loss's gradients then
    never reach the policy's features. Carry ``(policy, value)``; features ``(policy [D], value [D])``."""

    policy: nn.Module
    value: nn.Module

    def step(self, carry, x):
        policy_carry, policy_features = self.policy.step(carry[0], x)
        value_carry, value_features = self.value.step(carry[1], x)
        return (policy_carry, value_carry), (policy_features, value_features)

    def sequence(self, xs):
        return self.policy.sequence(xs), self.value.sequence(xs)

    def __call__(self, carry, x):  # used by init: creates every parameter
        return self.step(carry, x)


def initial_carry(core: nn.Module):
    """The carry at the start of a trial (zeros; an empty cache at position 0)."""
    if isinstance(core, SeparateCores):
        return initial_carry(core.policy), initial_carry(core.value)
    if isinstance(core, TransformerCore):
        head_dim = core.hidden_size // core.num_heads
        shape = (core.num_layers, core.max_length, core.num_heads, head_dim)
        return KVCache(jnp.zeros(shape), jnp.zeros(shape), jnp.zeros((), jnp.int32))
    return jnp.zeros((core.hidden_size,))
