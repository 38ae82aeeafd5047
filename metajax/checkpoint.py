"""The only module that talks to orbax: save and restore the full training state plus config.

Typed PRNG keys are stored as their raw key data and re-wrapped on restore.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _from_storable(stored, like):
    return jax.tree.map(
        lambda s, l: jax.random.wrap_key_data(s, impl=jax.random.key_impl(l)) if _is_key(l) else s,
        stored, like,
    )


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of ``(state, config)`` under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, config: dict) -> None:
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_to_storable(state)), config=ocp.args.JsonSave(config)
        )
        self._manager.save(step, args=args)
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure of ``like`` (e.g. a freshly initialised state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        target = _to_storable(like)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()
            ),
        )
        return _from_storable(restored["state"], like), restored["config"]

    def read_config(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return restored["config"]

    def close(self) -> None:
        self._manager.close()
