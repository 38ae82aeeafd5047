"""Tabular-MDP baselines on the same env and test tasks as the meta-learners.

``psrl_trial`` is posterior sampling for RL (Osband et al. 2013) with the task family's own prior:
before each episode it samples an MDP from the posterior, solves it by finite-horizon value
iteration and follows its greedy, time-dependent policy for the episode. Posterior (exact, conjugate):
  transitions P(.|s,a) ~ Dirichlet(1 + visit counts);
  mean reward mu(s,a) ~ N((1 + sum r) / (1 + n), 1 / (1 + n))   (prior N(1, 1), noise variance 1).
``random_trial`` acts uniformly; ``oracle_trial`` follows the known MDP's optimal policy.
Each returns the episode returns ``[n]`` of a trial of ``n`` episodes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from metajax.envs.tabular_mdp import MDPTask, TabularMDP


def greedy_q_values(task: MDPTask, horizon: int) -> jax.Array:
    """Time-dependent optimal Q-values ``[H, S, A]`` of a finite-horizon MDP (step 0 first)."""
    def backup(values, _):
        q = task.reward_mean + task.transitions @ values
        return jnp.max(q, axis=1), q

    _, q_values = jax.lax.scan(backup, jnp.zeros(task.reward_mean.shape[0]), None, length=horizon)
    return q_values[::-1]


def _run_episode(env: TabularMDP, task: MDPTask, key, choose):
    """One episode; ``choose(key, h, state) -> action``. Returns (states, actions, rewards, next states) ``[H]``."""
    reset_key, scan_key = jax.random.split(key)
    state, _ = env.reset(reset_key, task)

    def body(state, inputs):
        h, step_key = inputs
        choose_key, env_key = jax.random.split(step_key)
        action = choose(choose_key, h, state.state)
        next_state, timestep = env.step(env_key, state, action, task)
        return next_state, (state.state, action, timestep.reward, next_state.state)

    _, data = jax.lax.scan(body, state, (jnp.arange(env.horizon), jax.random.split(scan_key, env.horizon)))
    return data


def random_trial(env: TabularMDP, task: MDPTask, key, num_episodes: int) -> jax.Array:
    def episode(_, episode_key):
        choose = lambda k, h, s: jax.random.randint(k, (), 0, env.num_actions)  # noqa: E731
        return None, jnp.sum(_run_episode(env, task, episode_key, choose)[2])

    return jax.lax.scan(episode, None, jax.random.split(key, num_episodes))[1]


def oracle_trial(env: TabularMDP, task: MDPTask, key, num_episodes: int) -> jax.Array:
    q_values = greedy_q_values(task, env.horizon)

    def episode(_, episode_key):
        choose = lambda k, h, s: jnp.argmax(q_values[h, s])  # noqa: E731
        return None, jnp.sum(_run_episode(env, task, episode_key, choose)[2])

    return jax.lax.scan(episode, None, jax.random.split(key, num_episodes))[1]


def psrl_trial(env: TabularMDP, task: MDPTask, key, num_episodes: int) -> jax.Array:
    num_states, num_actions = env.num_states, env.num_actions

    def episode(posterior, episode_key):
        counts, reward_sums, visits = posterior
        reward_key, transition_key, run_key = jax.random.split(episode_key, 3)
        mean = (1.0 + reward_sums) / (1.0 + visits)
        sampled_mean = mean + jax.random.normal(reward_key, mean.shape) / jnp.sqrt(1.0 + visits)
        sampled_transitions = jax.random.dirichlet(transition_key, 1.0 + counts)
        q_values = greedy_q_values(MDPTask(sampled_mean, sampled_transitions), env.horizon)
        choose = lambda k, h, s: jnp.argmax(q_values[h, s])  # noqa: E731
        states, actions, rewards, next_states = _run_episode(env, task, run_key, choose)
        counts = counts.at[states, actions, next_states].add(1.0)
        reward_sums = reward_sums.at[states, actions].add(rewards)
        visits = visits.at[states, actions].add(1.0)
        return (counts, reward_sums, visits), jnp.sum(rewards)

    prior = (jnp.zeros((num_states, num_actions, num_states)), jnp.zeros((num_states, num_actions)),
             jnp.zeros((num_states, num_actions)))
    return jax.lax.scan(episode, prior, jax.random.split(key, num_episodes))[1]


TRIALS = {"random": random_trial, "psrl": psrl_trial, "oracle": oracle_trial}


def trial_returns(env: TabularMDP, tasks: MDPTask, key, num_episodes: int) -> dict:
    """Total return per trial ``{name: [N]}`` of random, PSRL and the known-MDP optimum on ``tasks [N]``."""
    num_tasks = tasks.reward_mean.shape[0]
    keys = jax.random.split(key, num_tasks)
    return {name: jnp.sum(jax.jit(jax.vmap(lambda t, k, f=trial: f(env, t, k, num_episodes)))(tasks, keys), -1)
            for name, trial in TRIALS.items()}
