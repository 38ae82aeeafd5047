"""``make("name-vN") -> (env, task_distribution)``; the one place names map to task families."""
from __future__ import annotations

from metajax.envs.bandit import ARM_COUNTS, make_bandit
from metajax.envs.cartpole_params import make_cartpole_params
from metajax.envs.maze import make_maze
from metajax.envs.point_nav import make_point_nav
from metajax.envs.point_robot_sparse import make_point_robot_sparse
from metajax.envs.tabular_mdp import make_tabular_mdp

_REGISTRY = {
    "point-nav-v1": make_point_nav,
    "point-robot-sparse-v1": make_point_robot_sparse,
    "cartpole-params-v1": make_cartpole_params,
    "tabular-mdp-v1": make_tabular_mdp,
    "maze-v1": make_maze,
}
_REGISTRY.update({f"bandit-k{k}-v1": (lambda k=k: make_bandit(k)) for k in ARM_COUNTS})


# brax families, imported on first use (brax is slow to import)
LOCOMOTION_FAMILIES = (
    "halfcheetah-vel-v1", "halfcheetah-dir-v1", "ant-dir-v1", "ant-goal-v1", "humanoid-dir-v1",
    "walker-rand-params-v1", "hopper-rand-params-v1", "halfcheetah-cripple-v1",
    "halfcheetah-damping-v1",
)
# their tasks change damping or masses, which only brax's generalized pipeline reads
PHYSICS_TASK_FAMILIES = ("walker-rand-params-v1", "hopper-rand-params-v1", "halfcheetah-damping-v1")


def _locomotion(name: str):
    def make():
        from metajax.envs.locomotion import FAMILIES

        return FAMILIES[name]()
    return make


_REGISTRY.update({name: _locomotion(name) for name in LOCOMOTION_FAMILIES})


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def make(name: str, backend: str | None = None):
    """Return ``(env, task_distribution)`` for a registered, versioned task family; ``backend``
    moves a brax family to another physics pipeline (``locomotion.on_backend``).

    Raises:
      ValueError: naming the valid names when ``name`` is unknown, and the valid backends.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; valid names: {', '.join(registered_names())}")
    if backend is not None and name not in LOCOMOTION_FAMILIES:
        raise ValueError(f"backend applies to the brax families ({', '.join(LOCOMOTION_FAMILIES)}), "
                         f"not {name!r}")
    env, tasks = _REGISTRY[name]()
    if backend is not None:
        from metajax.envs.locomotion import on_backend

        env = on_backend(env, backend)
    return env, tasks
