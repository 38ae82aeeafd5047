"""RL^2: conformance, the carry's life cycle over a trial, the two cores' paths, config errors, learning."""
import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.cores import GRUCore, SeparateCores, TransformerCore, initial_carry
from metajax.evaluation import evaluate_trials
from metajax.learners import MAMLConfig, make_maml
from metajax.learners.rl2 import RL2Config, RL2Network, make_rl2
from metajax.rollout import episode_returns_in_trial
from metajax.testing import check_learner
from metajax.training import train_seeds

SMALL = RL2Config(episodes_per_trial=3, trials_per_iteration=8, hidden_size=16, num_heads=2,
                  epochs=2, minibatches=2)


@pytest.mark.parametrize("name,core", [("bandit-k5-v1", "gru"), ("bandit-k5-v1", "transformer"),
                                       ("tabular-mdp-v1", "gru"), ("maze-v1", "transformer"),
                                       ("point-nav-v1", "gru")])
def test_conformance(name, core):
    env, tasks = metajax.make(name)
    episodes = 1 if env.horizon >= 100 else SMALL.episodes_per_trial
    config = dataclasses.replace(SMALL, core=core, episodes_per_trial=episodes)
    check_learner(make_rl2(env, tasks, config), env, tasks, eager=False)


@pytest.mark.parametrize("core", ["gru", "transformer"])
def test_separate_value_core_conformance_and_gradient_isolation(core):
    """With ``value_core="separate"`` the value loss moves only the value core and head, and the
    policy's log-probs move only the policy core and head."""
    env, tasks = metajax.make("bandit-k5-v1")
    if core == "gru":  # the transformer's is ~1 min; its training path is checked below instead
        config = dataclasses.replace(SMALL, core=core, value_core="separate")
        check_learner(make_rl2(env, tasks, config), env, tasks, eager=False)
    make = (lambda: TransformerCore(16, 1, 2, max_length=6)) if core == "transformer" else (lambda: GRUCore(16))
    network = RL2Network(SeparateCores(make(), make()), env.action_size, env.num_actions)
    xs = jax.random.normal(jax.random.key(0), (6, env.observation_size + env.num_actions + 2))
    carry = initial_carry(network.core)
    params = network.init(jax.random.key(1), carry, xs[0])

    def outputs(p):
        def body(c, x):
            c, dist, value = network.apply(p, c, x, method="step")
            return c, (dist.log_prob(0), value)
        return jax.lax.scan(body, carry, xs)[1]

    value_grads = jax.grad(lambda p: jnp.sum(outputs(p)[1]))(params)["params"]
    policy_grads = jax.grad(lambda p: jnp.sum(outputs(p)[0]))(params)["params"]
    norm = lambda tree: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)))
    assert norm(value_grads["core"]["policy"]) == 0.0 and norm(value_grads["policy_head"]) == 0.0
    assert norm(policy_grads["core"]["value"]) == 0.0 and norm(policy_grads["value_head"]) == 0.0
    assert norm(value_grads["core"]["value"]) > 0.0 and norm(policy_grads["core"]["policy"]) > 0.0
    if core == "transformer":  # the parallel training pass through both cores equals the steps
        dist, value = network.apply(params, xs, method="sequence")
        step_log_probs, step_values = outputs(params)
        np.testing.assert_allclose(dist.log_prob(0), step_log_probs, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(value, step_values, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("core", ["gru", "transformer"])
def test_carry_persists_across_episodes_and_starts_fresh_each_trial(core):
    """Replaying a trial step by step from the initial carry reproduces every log-prob only if the carry
    is kept across episode boundaries; resetting it there changes them (the test sees that bug)."""
    env, tasks = metajax.make("tabular-mdp-v1")  # H = 10: boundaries after steps 10 and 20
    learner = make_rl2(env, tasks, dataclasses.replace(SMALL, core=core))
    params = learner.init(jax.random.key(0)).params
    task = tasks.sample(jax.random.key(1))
    data, final_carry = jax.jit(learner.run_trial)(params, task, jax.random.key(2))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(data.done)), [9, 19, 29])

    def replay(reset_at_boundaries):
        carry, log_probs, values = learner.start_adaptation(params), [], []
        for t in range(data.reward.shape[0]):
            if reset_at_boundaries and t > 0 and data.done[t - 1]:
                carry = learner.start_adaptation(params)
            carry, dist, value = learner.make_policy(params, carry)(data.inputs[t])
            log_probs.append(dist.log_prob(data.action[t]))
            values.append(value)
        return jnp.stack(log_probs), jnp.stack(values), carry

    log_probs, values, carry = replay(False)
    np.testing.assert_allclose(log_probs, data.log_prob, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values, data.value, rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), carry, final_carry)
    reset_log_probs, _, _ = replay(True)
    np.testing.assert_allclose(reset_log_probs[:10], data.log_prob[:10], rtol=1e-4, atol=1e-5)
    assert float(jnp.max(jnp.abs(reset_log_probs[10:] - data.log_prob[10:]))) > 1e-3
    # the previous reward and done flag reach the core: the first input of episode 2 carries them
    np.testing.assert_allclose(data.inputs[10, -2:], [data.reward[9], 1.0])
    # every trial starts from the initial carry: the first step's policy is the same in all trials
    batch, _ = jax.vmap(learner.run_trial, in_axes=(None, 0, 0))(
        params, jax.vmap(tasks.sample)(jax.random.split(jax.random.key(3), 4)), jax.random.split(jax.random.key(4), 4))
    first = [learner.make_policy(params, learner.start_adaptation(params))(x)[1].log_prob(a)
             for x, a in zip(batch.inputs[:, 0], batch.action[:, 0])]
    np.testing.assert_allclose(jnp.stack(first), batch.log_prob[:, 0], rtol=1e-4, atol=1e-5)
    # adapt returns the carry at the end of the trial
    adapted = jax.jit(learner.adapt)(params, task, jax.random.key(2))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), adapted, final_carry)


def test_transition_input_holds_the_previous_observation():
    """``transition_input`` prepends s_{t-1} to ``[s_t, a_{t-1}, r_{t-1}, d_{t-1}]`` (zeros at t = 0),
    including across an episode boundary, where s_t is the next episode's start state."""
    env, tasks = metajax.make("tabular-mdp-v1")
    learner = make_rl2(env, tasks, dataclasses.replace(SMALL, core="transformer", transition_input=True))
    params = learner.init(jax.random.key(0)).params
    data, _ = jax.jit(learner.run_trial)(params, tasks.sample(jax.random.key(1)), jax.random.key(2))
    inputs = np.asarray(data.inputs)
    s = env.observation_size
    assert inputs.shape == (30, 2 * s + env.num_actions + 2)
    np.testing.assert_array_equal(inputs[0, :s], 0.0)
    np.testing.assert_array_equal(inputs[1:, :s], inputs[:-1, s:2 * s])
    np.testing.assert_array_equal(inputs[10, s:2 * s], np.eye(s)[0])  # reset to start state 0
    np.testing.assert_array_equal(inputs[1:, 2 * s:2 * s + env.num_actions],
                                  np.eye(env.num_actions)[np.asarray(data.action[:-1])])
    np.testing.assert_allclose(inputs[1:, -2], data.reward[:-1])
    np.testing.assert_array_equal(inputs[1:, -1], data.done[:-1])


def test_transformer_parallel_pass_equals_cached_steps():
    core = TransformerCore(hidden_size=16, num_layers=2, num_heads=4, max_length=12)
    xs = jax.random.normal(jax.random.key(0), (12, 7))
    params = core.init(jax.random.key(1), initial_carry(core), xs[0])

    def body(carry, x):
        return core.apply(params, carry, x, method="step")

    _, stepped = jax.lax.scan(body, initial_carry(core), xs)
    parallel = core.apply(params, xs, method="sequence")
    np.testing.assert_allclose(stepped, parallel, rtol=1e-4, atol=1e-5)
    # causal: the first 5 outputs do not depend on later inputs
    changed = core.apply(params, xs.at[5:].set(0.0), method="sequence")
    np.testing.assert_allclose(changed[:5], parallel[:5], rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(changed[5:] - parallel[5:]))) > 1e-3


def test_episode_returns_in_trial():
    reward = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    done = jnp.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(episode_returns_in_trial(reward, done, 3), [3.0, 3.0, 15.0])
    np.testing.assert_allclose(episode_returns_in_trial(reward, done, 2), [3.0, 3.0])  # later dropped


@pytest.mark.parametrize("field,value,allowed", [
    ("core", "lstm", "one of 'gru', 'transformer'"),
    ("episodes_per_trial", 0, "in [1, inf)"),
    ("discount", 1.5, "in [0.0, 1.0]"),
    ("learning_rate", 0.0, "in (0.0, inf)"),
    ("reward_scale", -1.0, "in (0.0, inf)"),
])
def test_bad_config_values_name_the_field_and_range(field, value, allowed):
    with pytest.raises(ValueError, match=re.escape(f"RL2Config.{field} must be {allowed}")):
        RL2Config(**{field: value})


def test_config_cross_checks():
    with pytest.raises(ValueError, match="RL2Config.minibatches must divide trials_per_iteration=10"):
        RL2Config(trials_per_iteration=10, minibatches=4)
    with pytest.raises(ValueError, match="RL2Config.num_heads must divide hidden_size=10"):
        RL2Config(core="transformer", hidden_size=10, num_heads=4)
    env, tasks = metajax.make("bandit-k5-v1")
    with pytest.raises(TypeError, match="config must be a RL2Config, got MAMLConfig"):
        make_rl2(env, tasks, MAMLConfig())
    with pytest.raises(TypeError, match="config must be a MAMLConfig, got RL2Config"):
        make_maml(env, tasks, config=RL2Config())


@pytest.mark.slow
def test_rl2_gru_beats_random_on_k5_n10_bandits():
    env, tasks = metajax.make("bandit-k5-v1")
    config = RL2Config(episodes_per_trial=10, trials_per_iteration=128, hidden_size=64)
    learner = make_rl2(env, tasks, config)
    test_tasks = tasks.test_tasks(500)
    untrained = evaluate_trials(learner, learner.init(jax.random.key(0)).params, test_tasks,
                                jax.random.key(1), 10).per_task.sum(1)
    states, _ = train_seeds(learner, [0], 300, chunk_size=50)
    params = jax.tree.map(lambda x: x[0], states.params)
    trained = evaluate_trials(learner, params, test_tasks, jax.random.key(1), 10).per_task.sum(1)
    print(f"RL2-GRU k=5 n=10: untrained {float(untrained.mean()):.2f}, trained {float(trained.mean()):.2f}")
    assert abs(float(untrained.mean()) - 5.0) < 0.3  # random play: 10 pulls of mean 0.5
    assert float(trained.mean()) > 6.0  # Thompson sampling gets 5.85 on these tasks, greedy play ~6.6


@pytest.mark.heavy
def test_rl2_meta_step_on_a_brax_family():
    env, tasks = metajax.make("halfcheetah-vel-v1")
    config = RL2Config(episodes_per_trial=2, trials_per_iteration=2, hidden_size=16, epochs=1, minibatches=1)
    learner = make_rl2(env, tasks, config)
    state, metrics = jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1))
    assert int(state.step) == 1 and all(bool(jnp.isfinite(v)) for v in metrics.values())
    assert float(metrics["trial_return"]) < 0.0  # -|v_x - v*| - 0.05 ctrl over 400 steps
