"""Bandit algorithms run on the same env and test tasks as the meta-learners.

Each algorithm is an arm-choice rule ``choose(key, pulls [k], wins [k], t) -> arm`` over the
sufficient statistics of a Bernoulli bandit; ``run_trial`` plays ``n`` pulls of one task through the
env and returns the rewards ``[n]`` (vmap over tasks). Rules:

  random:        a uniformly random arm.
  epsilon-greedy: each untried arm once, then with probability epsilon a random arm, else the best
                  empirical mean.
  UCB1:          each arm once, then argmax mean_i + sqrt(2 ln t / pulls_i) (Auer et al. 2002).
  Thompson:      argmax of theta_i ~ Beta(1 + wins_i, 1 + losses_i) (Beta(1, 1) = the task prior).
  best arm:      the oracle that knows the task and always pulls argmax p.
Ties are broken uniformly at random.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from metajax.envs.bandit import BanditTask, BernoulliBandit


def _argmax_random_ties(key, scores):
    noise = jax.random.uniform(key, scores.shape) * 1e-6
    return jnp.argmax(jnp.where(jnp.isfinite(scores), scores, jnp.inf) + noise)


def random_rule(key, pulls, wins, t):
    del wins, t
    return jax.random.randint(key, (), 0, pulls.shape[0])


def epsilon_greedy_rule(epsilon: float = 0.1) -> Callable:
    def choose(key, pulls, wins, t):
        del t
        explore_key, arm_key, tie_key = jax.random.split(key, 3)
        means = jnp.where(pulls > 0, wins / jnp.maximum(pulls, 1), jnp.inf)
        greedy = _argmax_random_ties(tie_key, means)
        explore = jax.random.bernoulli(explore_key, epsilon) & jnp.all(pulls > 0)
        return jnp.where(explore, jax.random.randint(arm_key, (), 0, pulls.shape[0]), greedy)

    return choose


def ucb1_rule(key, pulls, wins, t):
    bonus = jnp.sqrt(2.0 * jnp.log(jnp.maximum(t, 1)) / jnp.maximum(pulls, 1))
    scores = jnp.where(pulls > 0, wins / jnp.maximum(pulls, 1) + bonus, jnp.inf)
    return _argmax_random_ties(key, scores)


def thompson_rule(key, pulls, wins, t):
    del t
    sample_key, tie_key = jax.random.split(key)
    theta = jax.random.beta(sample_key, 1.0 + wins, 1.0 + pulls - wins)
    return _argmax_random_ties(tie_key, theta)


def best_arm_rule(task: BanditTask) -> Callable:
    def choose(key, pulls, wins, t):
        del key, pulls, wins, t
        return jnp.argmax(task.arm_probs)

    return choose


RULES = {
    "random": random_rule,
    "epsilon_greedy": epsilon_greedy_rule(),
    "ucb1": ucb1_rule,
    "thompson": thompson_rule,
}


def run_trial(env: BernoulliBandit, choose: Callable, task: BanditTask, key, num_pulls: int) -> jax.Array:
    """Rewards ``[num_pulls]`` of one trial of ``choose`` on ``task``."""
    k = env.num_actions

    def pull(carry, inputs):
        pulls, wins = carry
        t, step_key = inputs
        choose_key, env_key = jax.random.split(step_key)
        arm = choose(choose_key, pulls, wins, t)
        _, timestep = env.step(env_key, None, arm, task)
        one_hot = jax.nn.one_hot(arm, k)
        return (pulls + one_hot, wins + one_hot * timestep.reward), timestep.reward

    carry = (jnp.zeros(k), jnp.zeros(k))
    inputs = (jnp.arange(num_pulls), jax.random.split(key, num_pulls))
    _, rewards = jax.lax.scan(pull, carry, inputs)
    return rewards


def trial_returns(env: BernoulliBandit, tasks: BanditTask, key, num_pulls: int) -> dict:
    """Total reward per trial ``{name: [N]}`` of every rule and the best-arm oracle on ``tasks [N]``."""
    num_tasks = tasks.arm_probs.shape[0]
    keys = jax.random.split(key, num_tasks)
    results = {}
    for name, rule in RULES.items():
        play = jax.vmap(lambda task, k, rule=rule: run_trial(env, rule, task, k, num_pulls))
        results[name] = jnp.sum(jax.jit(play)(tasks, keys), axis=-1)
    oracle = jax.vmap(lambda task, k: run_trial(env, best_arm_rule(task), task, k, num_pulls))
    results["oracle"] = jnp.sum(jax.jit(oracle)(tasks, keys), axis=-1)
    return results
