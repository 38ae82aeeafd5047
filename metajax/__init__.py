"""metajax: meta-reinforcement learning as pure, compiled JAX functions."""
from metajax.envs import AutoReset, EpisodeStats, make, registered_names
from metajax.learners import MAMLConfig, make_maml
from metajax.types import Env, MetaLearner, MetaState, TaskDistribution, TimeStep, Transition

__version__ = "0.1.0"

__all__ = [
    "AutoReset", "EpisodeStats", "make", "registered_names", "MAMLConfig", "make_maml",
    "Env", "MetaLearner", "MetaState", "TaskDistribution", "TimeStep", "Transition",
]
