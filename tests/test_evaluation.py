"""rllab's step-budget batch (used to compare with the MAML paper's test protocol)."""
import jax.numpy as jnp
import numpy as np

from metajax.evaluation import StepBudgetSampler, step_budget_mask


def _valid(lengths, horizon=20):
    """``valid [T, B]`` of episodes with the given lengths (column ``k * num_envs + e``)."""
    return (jnp.arange(horizon)[:, None] < jnp.asarray(lengths)[None, :]).astype(jnp.float32)


def test_step_budget_keeps_the_episodes_finished_when_the_budget_is_reached():
    # env 0 runs episodes of 2 steps (finishing at t = 2, 4, 6), env 1 of 5 (t = 5, 10, 15)
    valid = _valid([2, 5, 2, 5, 2, 5])
    sampler = StepBudgetSampler(num_envs=2, min_steps=9, episodes_per_env=3)
    kept, enough = step_budget_mask(valid, sampler)  # 2 + 2 + 5 = 9 steps by t = 5
    np.testing.assert_array_equal(kept, [1, 1, 1, 0, 0, 0])
    assert bool(enough)
    kept, _ = step_budget_mask(valid, sampler._replace(min_steps=10))  # one more: t = 6
    np.testing.assert_array_equal(kept, [1, 1, 1, 0, 1, 0])


def test_step_budget_with_too_few_episodes_keeps_them_all():
    kept, enough = step_budget_mask(_valid([2, 5, 2, 5]), StepBudgetSampler(2, 100, 2))
    np.testing.assert_array_equal(kept, [1, 1, 1, 1])
    assert not bool(enough)


def test_full_length_episodes_give_one_episode_per_env():
    sampler = StepBudgetSampler(num_envs=40, min_steps=4000, episodes_per_env=3)
    kept, _ = step_budget_mask(_valid([100] * 120, horizon=100), sampler)
    np.testing.assert_array_equal(kept, [1] * 40 + [0] * 80)
