"""Core types and contracts shared by every environment and meta-learner.

Shapes are written ``[M, T, B, ...]``: tasks, time, parallel envs. Data is time-major.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

import jax

PRNGKey = jax.Array
Params = Any
Task = Any  # an explicit pytree of task parameters (goal, arm probabilities, physics scales...)
EnvState = Any


class TimeStep(NamedTuple):
    """What an env returns after ``reset`` or ``step``.

    ``terminated`` marks a true end of the MDP (no bootstrap); ``truncated`` marks the time limit.
    """

    observation: jax.Array  # [obs_dim]
    reward: jax.Array  # []
    terminated: jax.Array  # [] bool
    truncated: jax.Array  # [] bool

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated


class Transition(NamedTuple):
    """One time step of a rollout buffer; batched as ``[T, B, ...]``.

    ``valid`` is 0 after the episode ended (fixed-length buffers, masked tails); ``time`` is the
    step index within the episode.
    """

    observation: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    valid: jax.Array
    time: jax.Array
    log_prob: jax.Array


@runtime_checkable
class Env(Protocol):
    """A static, hashable environment with pure methods; the task is passed to every call."""

    observation_size: int
    action_size: int
    horizon: int

    def reset(self, key: PRNGKey, task: Task) -> tuple[EnvState, TimeStep]: ...

    def step(
        self, key: PRNGKey, state: EnvState, action: jax.Array, task: Task
    ) -> tuple[EnvState, TimeStep]: ...


@runtime_checkable
class TaskDistribution(Protocol):
    """``sample(key) -> task`` draws one task (callers vmap); ``test_tasks(n)`` is a fixed set."""

    name: str

    def sample(self, key: PRNGKey) -> Task: ...

    def test_tasks(self, n: int = 40) -> Task: ...


class MetaState(NamedTuple):
    """Everything a meta-learner carries between meta-iterations (a checkpointable pytree)."""

    params: Params
    opt_state: Any
    key: PRNGKey
    step: jax.Array


class MetaLearner(NamedTuple):
    """A meta-learner is a NamedTuple of pure functions built by a factory closing over config.

    init(key) -> MetaState
    adapt(params, task, key) -> adapted params (fast weights)
    meta_step(state, key) -> (state, metrics); usable as a ``lax.scan`` body
    make_policy(params, adapted) -> policy apply function ``obs -> (distribution, value)``
    adapt_step(params, adapted, batch, lr_scale=1.0) -> adapted after one more inner update on
        ``batch`` with the inner step size scaled by ``lr_scale``
        (gradient-based learners; the evaluation protocol reports returns after each step)
    start_adaptation(params) -> the adapted state before any data (the meta-parameters' policy)
    run_trial(params, task, key) -> (trial data, carry): one trial of a context-based learner
        (RL^2), the unit its evaluation protocol plays
    """

    init: Callable[[PRNGKey], MetaState]
    adapt: Callable[..., Any]
    meta_step: Callable[[MetaState, PRNGKey], tuple[MetaState, dict]]
    make_policy: Callable[..., Callable]
    adapt_step: Callable[..., Any] | None = None
    start_adaptation: Callable[..., Any] | None = None
    run_trial: Callable[..., Any] | None = None
