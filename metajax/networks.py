"""Policy and value networks (flax.linen) returning distrax distributions.

Contract: ``module.apply(params, obs) -> (distribution, value)`` with ``obs`` of shape ``[..., obs_dim]``;
``value`` has shape ``[...]`` when the module has a value head, else it is ``None``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "tanh": nn.tanh}


class MLP(nn.Module):
    """Fully connected torso: ``[..., in] -> [..., hidden_sizes[-1]]`` (or ``out_size`` if given)."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    out_size: int | None = None
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=nn.initializers.glorot_uniform())(x))
        if self.out_size is not None:
            init = nn.initializers.variance_scaling(self.out_scale, "fan_avg", "uniform")
            x = nn.Dense(self.out_size, kernel_init=init)(x)
        return x


class ValueHead(nn.Module):
    """A separate MLP value function ``[..., obs] -> [...]``."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        return MLP(self.hidden_sizes, self.activation, out_size=1)(obs)[..., 0]


class GaussianMLPPolicy(nn.Module):
    """Diagonal Gaussian policy with a state-independent, learned log-std (MAML/rllab style).

    Attributes:
      action_size: action dimension A; the distribution's events are ``[A]``.
      init_log_std: initial log standard deviation (0 -> std 1 in policy units).
      value_head: also return a learned value estimate from a separate MLP.
    """

    action_size: int
    hidden_sizes: Sequence[int] = (100, 100)
    activation: str = "relu"
    init_log_std: float = 0.0
    value_head: bool = False

    @nn.compact
    def __call__(self, obs):
        mean = MLP(self.hidden_sizes, self.activation, out_size=self.action_size)(obs)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_size,)
        )
        scale = jnp.broadcast_to(jnp.exp(log_std), mean.shape)
        dist = distrax.MultivariateNormalDiag(mean, scale)
        value = ValueHead(self.hidden_sizes, self.activation)(obs) if self.value_head else None
        return dist, value


class CategoricalMLPPolicy(nn.Module):
    """Categorical policy over ``num_actions`` discrete actions."""

    num_actions: int
    hidden_sizes: Sequence[int] = (100, 100)
    activation: str = "relu"
    value_head: bool = False

    @nn.compact
    def __call__(self, obs):
        logits = MLP(self.hidden_sizes, self.activation, out_size=self.num_actions, out_scale=0.01)(obs)
        value = ValueHead(self.hidden_sizes, self.activation)(obs) if self.value_head else None
        return distrax.Categorical(logits=logits), value


def default_policy(env, hidden_sizes: Sequence[int] = (100, 100), init_log_std: float = 0.0,
                   value_head: bool = False):
    """Categorical MLP for envs with ``num_actions`` (discrete), else the Gaussian MLP."""
    num_actions = getattr(env, "num_actions", None)
    if num_actions:
        return CategoricalMLPPolicy(num_actions, tuple(hidden_sizes), value_head=value_head)
    return GaussianMLPPolicy(env.action_size, tuple(hidden_sizes), init_log_std=init_log_std,
                             value_head=value_head)


def distribution_params(dist) -> dict:
    """The arrays that define a policy's distribution (inverse of ``distribution_from_params``)."""
    if isinstance(dist, distrax.MultivariateNormalDiag):
        return {"loc": dist.loc, "scale_diag": dist.scale_diag}
    if isinstance(dist, distrax.Categorical):
        return {"logits": dist.logits}
    raise TypeError(f"no parameter view for {type(dist).__name__}")


def distribution_from_params(params: dict):
    if "logits" in params:
        return distrax.Categorical(logits=params["logits"])
    return distrax.MultivariateNormalDiag(params["loc"], params["scale_diag"])
