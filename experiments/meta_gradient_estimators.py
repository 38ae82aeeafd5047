"""How close each Monte Carlo meta-gradient estimator gets to the exact meta-gradient.

  python -m experiments.meta_gradient_estimators            # the table (about a minute on a CPU)

Problem: a 2-state, 2-action MDP with deterministic rewards, horizon 3, undiscounted, a tabular
softmax policy ``pi(a|s) = softmax(W[s])``. Its expected return ``J(W)`` is exact
(``metajax.envs.tabular_mdp.expected_return``), so the meta-objective of one inner step
``J(W + (alpha/H) grad J(W)) / H`` and its gradient come from autodiff of the closed form. (MAML's
losses average over the ``H`` valid steps, hence the ``1/H``.) Each estimator runs the library's
own inner loop and MAML outer surrogate on sampled episodes (no baseline, no normalisation, so
every piece but the curvature term is unbiased); the table gives the average over many
independent meta-batches, its distance to the exact gradient, and the Monte Carlo standard error.
"""
from __future__ import annotations

import argparse

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from metajax.envs.tabular_mdp import MDPTask, TabularMDP, expected_return
from metajax.envs.tasks import TaskFamily
from metajax.estimators import ESTIMATORS
from metajax.learners.inner_loop import make_inner_loop
from metajax.learners.maml import MAMLConfig, maml_surrogate_and_kl

HORIZON = 3
INNER_LR = 3.0
TASK = MDPTask(
    reward_mean=jnp.array([[1.0, 0.0], [0.0, 2.0]]),
    transitions=jnp.array([[[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.1, 0.9]]]),
)
LOGITS = jnp.array([[0.3, -0.2], [0.5, -0.4]])


class TabularSoftmax(nn.Module):
    """``pi(.|s) = softmax(W[s])`` for one-hot observations ``[..., S]``."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        logits = self.param("logits", nn.initializers.zeros, (obs.shape[-1], self.num_actions))
        return distrax.Categorical(logits=obs @ logits), None


def exact_meta_gradient(logits=LOGITS, inner_lr=INNER_LR, task=TASK, horizon=HORIZON) -> jax.Array:
    """``grad_W [J(W + (alpha/H) grad J(W)) / H]`` (the MAML surrogate's target, sign flipped)."""
    mean_return = lambda w: expected_return(jax.nn.softmax(w, axis=-1), task, horizon) / horizon
    adapted = lambda w: w + inner_lr * jax.grad(mean_return)(w)
    return jax.grad(lambda w: mean_return(adapted(w)))(logits)


def estimate(estimator: str, rollouts: int, tasks_per_batch: int, batches: int, seed: int = 0):
    """Meta-gradient estimates ``[batches, S, A]``, each averaged over ``tasks_per_batch`` copies of
    the task (independent inner and post-update episodes for each)."""
    env = TabularMDP(num_states=2, num_actions=2, horizon=HORIZON, reward_noise=0.0)
    fixed = TaskFamily("fixed-mdp", lambda key: TASK)
    cfg = MAMLConfig(meta_batch_size=tasks_per_batch, rollouts_per_task=rollouts, inner_lr=INNER_LR,
                     estimator=estimator, baseline="none", normalize_advantages=False, discount=1.0)
    loop = make_inner_loop(env, fixed, cfg, policy=TabularSoftmax(2))
    params = {"params": {"logits": LOGITS}}

    def one(key):
        data = loop.collect(params, key)
        grads = jax.grad(lambda p: maml_surrogate_and_kl(loop, p, data)[0])(params)
        return -grads["params"]["logits"]  # the surrogate is a loss: flip to the ascent direction

    keys = jax.random.split(jax.random.key(seed), batches)
    return jax.lax.map(jax.jit(one), keys)


def table(rollouts=(10, 50), tasks_per_batch=2000, batches=50, seed=0) -> list[dict]:
    exact = np.asarray(exact_meta_gradient()).ravel()
    rows = []
    for b in rollouts:
        for name in ESTIMATORS:
            samples = np.asarray(estimate(name, b, tasks_per_batch, batches, seed)).reshape(batches, -1)
            mean = samples.mean(0)
            stderr = samples.std(0, ddof=1) / np.sqrt(batches)
            rows.append({
                "estimator": name, "rollouts": b, "samples": batches * tasks_per_batch,
                "relative_error": float(np.linalg.norm(mean - exact) / np.linalg.norm(exact)),
                "relative_stderr": float(np.linalg.norm(stderr) / np.linalg.norm(exact)),
                "max_z": float(np.max(np.abs(mean - exact) / stderr)),
                "cosine": float(mean @ exact / np.linalg.norm(mean) / np.linalg.norm(exact)),
                "per_task_std": float(np.linalg.norm(samples.std(0)) * np.sqrt(tasks_per_batch)),
            })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--tasks-per-batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=50)
    args = parser.parse_args(argv)
    if min(args.rollouts) < 1 or args.tasks_per_batch < 1 or args.batches < 2:
        parser.error("--rollouts and --tasks-per-batch must be >= 1, --batches >= 2")
    print("exact meta-gradient:", np.round(np.asarray(exact_meta_gradient()).ravel(), 5))
    print(f"{'estimator':<9} {'B':>4} {'samples':>8} {'rel.err':>8} {'rel.s.e.':>8} {'max z':>7} "
          f"{'cosine':>7} {'std/task':>8}")
    rows = table(tuple(args.rollouts), args.tasks_per_batch, args.batches)
    for r in rows:
        print(f"{r['estimator']:<9} {r['rollouts']:>4} {r['samples']:>8} {r['relative_error']:>8.4f} "
              f"{r['relative_stderr']:>8.4f} {r['max_z']:>7.1f} {r['cosine']:>7.4f} {r['per_task_std']:>8.3f}")
    return rows


if __name__ == "__main__":
    main()
