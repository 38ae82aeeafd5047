"""The single-task PPO trainer (oracle rows): learns, vmaps over tasks, validates its config."""
import jax
import jax.numpy as jnp
import pytest

import metajax
from metajax.envs.point_nav import GoalTask
from metajax.evaluation import evaluate_policies
from metajax.ppo import PPOConfig, make_policy, train_ppo


@pytest.mark.slow
def test_ppo_trains_one_oracle_per_task_in_one_program():
    env, _ = metajax.make("point-nav-v1")
    goals = GoalTask(jnp.array([[0.3, -0.2], [-0.4, 0.35]]))
    cfg = PPOConfig(updates=60)
    params, metrics = jax.jit(jax.vmap(lambda task, key: train_ppo(env, task, key, cfg)))(
        goals, jax.random.split(jax.random.key(0), 2))
    assert metrics.episode_return.shape == (2, 60)
    policy = make_policy(env, cfg)
    result = evaluate_policies(env, policy.apply, params, goals, jax.random.key(1))
    untrained = jax.vmap(lambda k: policy.init(k, jnp.zeros((1, 2))))(jax.random.split(jax.random.key(2), 2))
    before = evaluate_policies(env, policy.apply, untrained, goals, jax.random.key(1))
    # measured: -4.0 / -5.5 after 60 updates (123k steps per task); untrained about -30
    assert float(result.mean[0]) > -9.0 and float(before.mean[0]) < -15.0, (result.per_task, before)


@pytest.mark.slow
def test_ppo_balances_a_cartpole_with_other_physics():
    env, tasks = metajax.make("cartpole-params-v1")
    _, metrics = jax.jit(lambda k: train_ppo(env, tasks.sample(jax.random.key(3)), k, PPOConfig(updates=60)))(
        jax.random.key(0))
    # measured 304 at update 60 (random play lasts about 20 steps)
    assert float(metrics.episode_return[-5:].mean()) > 150.0, metrics.episode_return


def test_ppo_config_errors():
    with pytest.raises(ValueError, match="PPOConfig.minibatches must divide num_envs"):
        PPOConfig(num_envs=3, rollout_steps=5, minibatches=4)
    with pytest.raises(ValueError, match=r"PPOConfig.clip must be in \(0.0, 1.0\]"):
        PPOConfig(clip=0.0)
