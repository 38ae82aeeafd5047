"""Inner-loop objectives whose autodiff gives the meta-gradient estimators of gradient-based meta-RL.

All three have the same first derivative, the policy gradient ``mean_valid(grad log pi_t * A_t)``
(rllab's, without a ``gamma^t`` weight); they differ in the curvature that flows through the inner
update into the meta-gradient (Rothfuss et al., "ProMP", ICLR 2019, Sec. 4-5):

* ``maml``: ``log pi_t * A_t`` (the MAML paper's code). Its Hessian keeps only
  ``grad^2 log pi * A`` and misses the sampling-distribution term ``grad log pi grad log pi^T A``.
* ``lvc``: ``pi_t / pi_t^sampled * A_t`` (low variance curvature). Adds the per-step outer
  products but drops the cross-time terms; biased, low variance.
* ``dice``: ``(box(a_<=t) - box(a_<t)) * A_t`` with ``box(x) = prod pi/pi^sampled`` over the
  episode prefix (DiCE, Foerster et al. 2018, with the baseline of Mao et al. 2019 written in
  advantage form). With ``A_t`` the undiscounted reward-to-go (``discount=1``, no advantage
  normalisation) its Hessian is an unbiased estimate of the expected return's; with a discount or
  normalised advantages, of that surrogate's. High variance.

``lvc`` and ``dice`` take their ratios against the log-probabilities recorded at sampling time, so
they are also importance-weighted estimates when evaluated away from the sampling parameters
(ProMP's outer steps); ``maml`` has no ratio, so away from them it is the plain score-function form,
not reweighted.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from metajax.losses import masked_mean

ESTIMATORS = ("maml", "lvc", "dice")


def inner_objective(estimator: str, log_probs, sample_log_probs, advantages, valid) -> jax.Array:
    """The inner loss to minimise (a scalar) from ``[T, B]`` arrays of one task's episodes.

    Args:
      log_probs: ``log pi_theta(a_t|s_t)``, differentiable.
      sample_log_probs: log-probabilities under the policy that sampled the data (constants).
      advantages: ``A_t`` (constants), 0 after the episode ends.
      valid: 1 while the episode runs.
    """
    advantages = jax.lax.stop_gradient(advantages)
    log_ratio = (log_probs - jax.lax.stop_gradient(sample_log_probs)) * valid
    if estimator == "maml":
        terms = log_probs * advantages
    elif estimator == "lvc":
        terms = jnp.exp(log_ratio) * advantages
    elif estimator == "dice":
        through_t = jnp.cumsum(log_ratio, axis=0)
        before_t = through_t - log_ratio
        terms = (jnp.exp(through_t) - jnp.exp(before_t)) * advantages
    else:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
    return -masked_mean(terms, valid)
