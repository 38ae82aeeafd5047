"""RL^2 (Duan et al., "RL^2: Fast Reinforcement Learning via Slow Reinforcement Learning", 2016).

The policy is a sequence model whose carry does the fast learning. At every step of a trial it reads
``x_t = [obs_t, a_{t-1} (one-hot if discrete), r_{t-1}, d_{t-1}]`` (zeros at the first step;
``d`` = the previous step ended an episode). With ``transition_input`` it also reads ``obs_{t-1}``,
so that one input holds a whole transition (s, a, r, s'): a transformer can then find the outcomes of
a state-action pair by attending to single inputs (on tabular MDPs this lifts it from below PSRL to
above it; README). The carry persists across the episodes of a trial (the
env auto-resets with the same task) and starts fresh at each trial. The slow learner is PPO over
whole trials: GAE runs across episode boundaries and stops only at the end of the trial, so the
return the policy maximises is the trial's. Cores (``metajax.cores``): a GRU, or a causal
transformer over the trial history (in-context RL). A trial is ``episodes_per_trial * env.horizon``
steps; envs that terminate early simply fit more episodes into it.

Learner API: ``adapt(params, task, key)`` runs one trial and returns the carry at its end;
``start_adaptation(params)`` is the initial carry; ``make_policy(params, carry)`` returns
``x [I] -> (carry', distribution, value)``; ``run_trial(params, task, key) -> (TrialData, carry)``
is what the evaluation protocol plays.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from metajax import losses
from metajax.config import Config, option
from metajax.cores import GRUCore, SeparateCores, TransformerCore, initial_carry
from metajax.envs.wrappers import AutoReset
from metajax.learners.inner_loop import require_config
from metajax.networks import distribution_from_params, distribution_params
from metajax.ppo import clipped_objective, ppo_epochs
from metajax.rollout import episode_returns_in_trial
from metajax.types import MetaLearner, MetaState


@dataclasses.dataclass(frozen=True)
class RL2Config(Config):
    core: str = option("gru", choices=("gru", "transformer"), help="sequence core")
    value_core: str = option("shared", choices=("shared", "separate"),
                             help="value head on the policy's core, or on a second core of its own")
    episodes_per_trial: int = option(10, low=1, help="episodes per trial (n); the carry spans them")
    trials_per_iteration: int = option(128, low=1, help="trials per meta-iteration, each a fresh task")
    transition_input: bool = option(False, help="also read the previous observation, so that each input "
                                     "is a whole transition (s, a, r, s'); not in the paper")
    hidden_size: int = option(128, low=1, help="core width")
    num_layers: int = option(2, low=1, help="transformer layers")
    num_heads: int = option(4, low=1, help="transformer heads (must divide hidden_size)")
    learning_rate: float = option(1e-3, low=0.0, low_open=True, help="Adam step size")
    epochs: int = option(4, low=1, help="PPO passes over each batch of trials")
    minibatches: int = option(4, low=1, help="minibatches of trials per pass")
    clip: float = option(0.2, low=0.0, low_open=True, high=1.0, help="PPO ratio clip")
    discount: float = option(0.99, low=0.0, high=1.0, help="discount gamma across the whole trial")
    gae_lambda: float = option(0.95, low=0.0, high=1.0, help="GAE lambda across the whole trial")
    value_coef: float = option(0.5, low=0.0, help="value loss weight")
    reward_scale: float = option(1.0, low=0.0, low_open=True,
                                 help="reward multiplier for the value head's targets (the core reads raw rewards)")
    entropy_coef: float = option(0.01, low=0.0, help="entropy bonus weight")
    max_grad_norm: float = option(1.0, low=0.0, low_open=True, help="gradient clipping")

    def __post_init__(self):
        super().__post_init__()
        if self.trials_per_iteration % self.minibatches:
            raise ValueError(f"RL2Config.minibatches must divide trials_per_iteration="
                             f"{self.trials_per_iteration}, got {self.minibatches}")
        if self.core == "transformer" and self.hidden_size % self.num_heads:
            raise ValueError(f"RL2Config.num_heads must divide hidden_size={self.hidden_size}, "
                             f"got {self.num_heads}")


class TrialData(NamedTuple):
    """One trial, leaves ``[T, ...]``: what the core read, what it did, what it got."""

    inputs: jax.Array  # [T, I]
    action: jax.Array  # [T] (discrete) or [T, A]
    log_prob: jax.Array  # [T]
    value: jax.Array  # [T]
    reward: jax.Array  # [T]
    done: jax.Array  # [T] float, 1 where the step ended an episode


class RL2Network(nn.Module):
    """A core with a policy head (categorical logits, or Gaussian mean + state-free log-std) and a value head."""

    core: nn.Module
    action_size: int
    num_actions: int | None = None

    def setup(self):
        out = self.num_actions or self.action_size  # small initial outputs: near-uniform / zero-mean start
        self.policy_head = nn.Dense(out, kernel_init=nn.initializers.variance_scaling(0.01, "fan_avg", "uniform"))
        self.value_head = nn.Dense(1)
        if not self.num_actions:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_size,))

    def heads(self, features):
        """Features ``[..., D]``, or a ``(policy, value)`` pair from ``SeparateCores``."""
        policy_features, value_features = features if isinstance(features, tuple) else (features, features)
        out = self.policy_head(policy_features)
        if self.num_actions:
            dist = distrax.Categorical(logits=out)
        else:
            dist = distrax.MultivariateNormalDiag(out, jnp.broadcast_to(jnp.exp(self.log_std), out.shape))
        return dist, self.value_head(value_features)[..., 0]

    def step(self, carry, x):
        carry, features = self.core.step(carry, x)
        return (carry, *self.heads(features))

    def core_step(self, carry, x):
        return self.core.step(carry, x)

    def sequence(self, xs):
        return self.heads(self.core.sequence(xs))

    def __call__(self, carry, x):
        return self.step(carry, x)


def make_rl2(env, tasks, config: RL2Config = RL2Config()) -> MetaLearner:
    """RL^2 on ``env`` with tasks drawn from ``tasks.sample``; returns a MetaLearner."""
    require_config(config, RL2Config)
    cfg = config
    num_actions = getattr(env, "num_actions", None)
    trial_steps = cfg.episodes_per_trial * env.horizon

    def make_core():
        if cfg.core == "gru":
            return GRUCore(cfg.hidden_size)
        return TransformerCore(cfg.hidden_size, cfg.num_layers, cfg.num_heads, max_length=trial_steps)

    core = make_core() if cfg.value_core == "shared" else SeparateCores(make_core(), make_core())
    network = RL2Network(core, env.action_size, num_actions)
    observation_inputs = 2 if cfg.transition_input else 1
    input_size = env.observation_size * observation_inputs + (num_actions or env.action_size) + 2
    carry0 = initial_carry(core)
    stepper = AutoReset(env)
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))

    def encode(previous_observation, observation, action, reward, done):
        """The core's input ``[input_size]``: ``[s_{t-1} (transition_input only), s_t, a_{t-1}, r_{t-1},
        d_{t-1}]``."""
        action = jax.nn.one_hot(action, num_actions) if num_actions else action
        parts = [observation, action, reward[None], done[None].astype(jnp.float32)]
        if cfg.transition_input:
            parts.insert(0, previous_observation)
        return jnp.concatenate(parts)

    def run_trial(params, task, key):
        reset_key, scan_key = jax.random.split(key)
        env_state, timestep = stepper.reset(reset_key, task)
        no_action = jnp.zeros((), jnp.int32) if num_actions else jnp.zeros((env.action_size,))
        observation = timestep.observation
        first = encode(jnp.zeros_like(observation), observation, no_action, jnp.zeros(()),
                       jnp.zeros((), bool))

        def body(carry, step_key):
            env_state, core_carry, x, observation = carry
            act_key, env_key = jax.random.split(step_key)
            core_carry, dist, value = network.apply(params, core_carry, x, method="step")
            action, log_prob = dist.sample_and_log_prob(seed=act_key)
            env_state, ts = stepper.step(env_key, env_state, action, task)
            data = TrialData(x, action, log_prob, value, ts.reward, ts.done.astype(jnp.float32))
            x = encode(observation, ts.observation, action, ts.reward, ts.done)
            return (env_state, core_carry, x, ts.observation), data

        (_, core_carry, _, _), data = jax.lax.scan(body, (env_state, carry0, first, observation),
                                                   jax.random.split(scan_key, trial_steps))
        return data, core_carry

    def trial_outputs(params, inputs):
        """Policy distribution parameters and values ``[T]`` over a whole trial, from the initial carry."""
        if cfg.core == "transformer":
            dist, value = network.apply(params, inputs, method="sequence")
        else:
            def body(core_carry, x):
                return network.apply(params, core_carry, x, method="core_step")

            features = jax.lax.scan(body, carry0, inputs)[1]
            dist, value = network.apply(params, features, method="heads")
        return distribution_params(dist), value  # arrays, so that vmap can batch them

    def init(key) -> MetaState:
        init_key, key = jax.random.split(key)
        params = network.init(init_key, carry0, jnp.zeros((input_size,)))
        return MetaState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32))

    def loss_fn(params, batch):
        inputs, action, old_log_prob, advantage, target = batch  # [B, T, ...]
        dist_params, value = jax.vmap(trial_outputs, in_axes=(None, 0))(params, inputs)
        return clipped_objective(distribution_from_params(dist_params), value, action, old_log_prob,
                                 advantage, target, cfg)

    def meta_step(state: MetaState, key):
        task_key, trial_key, shuffle_key = jax.random.split(key, 3)
        num = cfg.trials_per_iteration
        batch_tasks = jax.vmap(tasks.sample)(jax.random.split(task_key, num))
        data, _ = jax.vmap(run_trial, in_axes=(None, 0, 0))(state.params, batch_tasks,
                                                           jax.random.split(trial_key, num))
        # GAE across episode boundaries: the trial is one episode for the slow learner, [T, M]
        reward = cfg.reward_scale * data.reward.T  # the value head learns scaled returns
        advantage = losses.gae_advantages(reward, data.value.T, jnp.ones_like(reward), cfg.discount,
                                          cfg.gae_lambda).T
        batch = (data.inputs, data.action, data.log_prob, advantage, advantage + data.value)

        params, opt_state, (_, info) = ppo_epochs(loss_fn, optimizer, state.params, state.opt_state, batch,
                                                  shuffle_key, cfg.epochs, cfg.minibatches)
        episodes = jax.vmap(episode_returns_in_trial, in_axes=(0, 0, None))(
            data.reward, data.done, cfg.episodes_per_trial)  # [M, n]
        metrics = {"trial_return": jnp.mean(jnp.sum(data.reward, axis=1)),
                   "first_episode_return": jnp.mean(episodes[:, 0]),
                   "last_episode_return": jnp.mean(episodes[:, -1]),
                   **jax.tree.map(lambda x: jnp.mean(x[-1]), info)}
        return MetaState(params, opt_state, state.key, state.step + 1), metrics

    def adapt(params, task, key):
        return run_trial(params, task, key)[1]

    def make_policy(params, carry):
        return lambda x: network.apply(params, carry, x, method="step")

    return MetaLearner(init=init, adapt=adapt, meta_step=meta_step, make_policy=make_policy,
                       start_adaptation=lambda params: carry0, run_trial=run_trial)
