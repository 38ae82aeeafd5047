"""Environments with explicit task pytrees, and the ``make`` registry."""
from metajax.envs.registry import make, registered_names
from metajax.envs.tasks import TaskFamily
from metajax.envs.wrappers import AutoReset, EpisodeStats

__all__ = ["make", "registered_names", "TaskFamily", "AutoReset", "EpisodeStats"]
