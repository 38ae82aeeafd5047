"""Meta-SGD (Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", 2017).

MAML with a learned inner step size per parameter: ``phi = theta - alpha (*) grad L_in(theta)``,
where ``alpha`` (same shape as ``theta``, initialised to ``inner_lr``, sign unconstrained) is
meta-learned together with ``theta`` by the same outer step (TRPO through the adaptation, or Adam).
Meta-parameters: ``{"policy": theta, "step_size": alpha}``.
"""
from __future__ import annotations

import dataclasses

from metajax.learners.inner_loop import require_config
from metajax.learners.maml import MAMLConfig, make_gradient_meta_learner
from metajax.types import MetaLearner


@dataclasses.dataclass(frozen=True)
class MetaSGDConfig(MAMLConfig):
    """MAML's fields; ``inner_lr`` is the initial value of every learned step size."""


def make_meta_sgd(env, task_dist, config: MetaSGDConfig = MetaSGDConfig(), policy=None) -> MetaLearner:
    """Build Meta-SGD's pure functions (``init / adapt / meta_step / make_policy``)."""
    require_config(config, MetaSGDConfig)
    return make_gradient_meta_learner(env, task_dist, config, policy, learned_step_sizes=True)
