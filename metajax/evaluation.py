"""The one meta-test protocol used by every learner.

Gradient-based learners: on each held-out test task, roll out ``rollouts_per_step`` episodes with
the current policy, record their mean return, take one adaptation step on exactly those episodes,
and repeat; this gives returns after 0..K adaptation steps. The first step uses the learner's own
inner step size (the one it was meta-trained for); steps after it scale that step size by
``later_steps_lr_scale`` (0.5 by default: at the full step size a second step overshoots on
point-nav, see README). Results are the mean and standard error over tasks. The same protocol
from a fresh (not meta-trained) initialisation gives the random-init row, and ``evaluate_oracle`` gives the row of a policy that is told the task.

For comparison with papers evaluated in rllab (MAML's), ``evaluate`` can instead draw each
step's batch the way rllab's vectorised sampler does (``StepBudgetSampler``): ``num_envs`` envs run
episodes back to back in lockstep and sampling stops at the first step at which the finished
episodes hold ``min_steps`` steps; unfinished episodes are dropped. Both the reported return (mean
over the kept episodes, which favours short ones) and the adaptation step use that batch.

Context-based learners (RL^2): ``evaluate_trials`` plays one trial per held-out test task, the carry
spanning its episodes, and reports the return of each episode of the trial (mean and standard error
over tasks); the trial's total return is the sum over episodes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from metajax.rollout import (
    StepBudgetSampler, episode_returns, episode_returns_in_trial, mean_episode_return, policy_act,
    rollout, step_budget_mask,
)
from metajax.types import MetaLearner

NUM_TEST_TASKS = 40
ROLLOUTS_PER_STEP = 20


class EvalResult(NamedTuple):
    """``per_task [N, K+1]`` mean episode return per task after 0..K steps; ``mean``/``stderr [K+1]``."""

    per_task: jax.Array
    mean: jax.Array
    stderr: jax.Array

    def rows(self) -> list[dict]:
        return [
            {"adaptation_steps": k, "mean": float(m), "stderr": float(s)}
            for k, (m, s) in enumerate(zip(self.mean, self.stderr))
        ]


def summarize(per_task: jax.Array) -> EvalResult:
    """Mean and standard error over the task axis 0 of ``[N, ...]``."""
    n = per_task.shape[0]
    stderr = jnp.std(per_task, axis=0, ddof=1) / jnp.sqrt(n) if n > 1 else jnp.zeros_like(per_task[0])
    return EvalResult(per_task, jnp.mean(per_task, axis=0), stderr)


def evaluate(
    learner: MetaLearner,
    env,
    params,
    tasks,
    key,
    adaptation_steps: int = 3,
    rollouts_per_step: int = ROLLOUTS_PER_STEP,
    later_steps_lr_scale: float = 0.5,
    sampler: StepBudgetSampler | None = None,
) -> EvalResult:
    """Returns after ``0..adaptation_steps`` inner updates on each task of ``tasks [N, ...]``.

    Each step's batch is ``rollouts_per_step`` episodes, or rllab's step-budget batch if
    ``sampler`` is given (then ``rollouts_per_step`` is unused).
    """
    if learner.adapt_step is None:
        raise ValueError("evaluate needs a gradient-based learner with adapt_step")

    def sample(act, task, key):
        if sampler is None:
            return rollout(env, act, task, key, rollouts_per_step)
        batch = rollout(env, act, task, key, sampler.num_envs * sampler.episodes_per_env)
        kept, _ = step_budget_mask(batch.valid, sampler)
        return batch._replace(valid=batch.valid * kept)

    def per_task(task, task_key):
        adapted = learner.start_adaptation(params)
        returns = []
        for step_key in jax.random.split(task_key, adaptation_steps + 1):
            act = policy_act(lambda p, obs: learner.make_policy(params, p)(obs), adapted)
            batch = sample(act, task, step_key)
            returns.append(mean_episode_return(batch))
            if len(returns) <= adaptation_steps:
                scale = 1.0 if len(returns) == 1 else later_steps_lr_scale
                adapted = learner.adapt_step(params, adapted, batch, scale)
        return jnp.stack(returns)

    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    return summarize(jax.vmap(per_task)(tasks, jax.random.split(key, num_tasks)))


def evaluate_trials(learner: MetaLearner, params, tasks, key, num_episodes: int) -> EvalResult:
    """Per-episode returns ``[N, num_episodes]`` of one trial per task of ``tasks [N, ...]``."""
    if learner.run_trial is None:
        raise ValueError("evaluate_trials needs a context-based learner with run_trial (e.g. RL^2)")
    def per_task(task, task_key):
        data, _ = learner.run_trial(params, task, task_key)
        return episode_returns_in_trial(data.reward, data.done, num_episodes)

    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    return summarize(jax.jit(jax.vmap(per_task))(tasks, jax.random.split(key, num_tasks)))


def evaluate_policies(env, policy_apply: Callable, params, tasks, key,
                      rollouts_per_step: int = ROLLOUTS_PER_STEP) -> EvalResult:
    """Return of one policy per task (``params`` leaves ``[N, ...]``, e.g. PPO oracles)."""

    def per_task(task_params, task, task_key):
        batch = rollout(env, policy_act(policy_apply, task_params), task, task_key, rollouts_per_step)
        return jnp.mean(episode_returns(batch))[None]

    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    return summarize(jax.vmap(per_task)(params, tasks, jax.random.split(key, num_tasks)))


def evaluate_oracle(
    env, tasks, key, oracle: Callable | None = None, rollouts_per_step: int = ROLLOUTS_PER_STEP
) -> EvalResult:
    """Return of a policy given the task: ``oracle(obs [B, O], task) -> action [B, A]``.

    Defaults to the env's ``oracle_action`` (e.g. the goal-seeking controller on navigation).
    """
    oracle = env.oracle_action if oracle is None else oracle

    def per_task(task, task_key):
        def act(_, obs):
            action = jax.vmap(oracle, in_axes=(0, None))(obs, task)
            return action, jnp.zeros(obs.shape[:1])

        batch = rollout(env, act, task, task_key, rollouts_per_step)
        return jnp.mean(episode_returns(batch))[None]

    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    return summarize(jax.vmap(per_task)(tasks, jax.random.split(key, num_tasks)))
