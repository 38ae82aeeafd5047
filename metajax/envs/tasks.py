"""Task distributions: ``sample(key) -> task`` plus fixed, seeded, versioned train/test sets."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

SPLIT_SEEDS = {"train": 1_000_003, "test": 2_000_003}


@dataclasses.dataclass(frozen=True)
class TaskFamily:
    """A versioned task distribution.

    Attributes:
      name: the versioned name, e.g. ``"point-nav-v1"``.
      sample_fn: ``key -> task`` pytree for one task; callers vmap.
      finite_size: number of distinct tasks if the family is finite (e.g. 2 directions), else None.
    """

    name: str
    sample_fn: Callable[[jax.Array], Any]
    finite_size: int | None = None

    def sample(self, key: jax.Array) -> Any:
        return self.sample_fn(key)

    def fixed_tasks(self, split: str, n: int) -> Any:
        """A fixed, seeded task set ``[n, ...]``; the same name and split always give the same tasks."""
        if split not in SPLIT_SEEDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        # jax's random bits depend on this flag, whose default changed in jax 0.5: pinned, so
        # every supported jax draws the same sets
        with jax.threefry_partitionable(True):
            keys = jax.random.split(jax.random.key(SPLIT_SEEDS[split]), n)
            return jax.vmap(self.sample_fn)(keys)

    def test_tasks(self, n: int = 40) -> Any:
        """The meta-test set: ``n`` tasks drawn with the family's fixed test seed."""
        return self.fixed_tasks("test", n)
