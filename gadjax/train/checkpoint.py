"""Checkpoints of whole train states with orbax.

Orbax writes each checkpoint into a temporary directory and renames it into place only
once every array is on disk, so a crash mid-save leaves the previous checkpoints intact
and never a half-written one that looks finished.  On restore, a checkpoint that fails
to load (truncated or corrupted files) is reported and the next older one is tried;
bad checkpoints are never deleted or overwritten silently.
"""
from __future__ import annotations

import logging
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored."""


class Checkpointer:
    """Save and restore a train-state pytree under ``directory/<step>/``.

    Args:
      directory: where checkpoints live (created if missing).
      max_to_keep: older checkpoints beyond this number are deleted after a save.
    """

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Steps of the finished checkpoints, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any) -> None:
        """Write ``state`` as checkpoint ``step`` and wait until it is finalised."""
        if step in self.steps():
            return  # the same step was saved already (e.g. final save right after a periodic one)
        self._manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, int]:
        """Restore into the structure, dtypes and shardings of ``abstract_state``.

        ``abstract_state`` is typically ``jax.eval_shape(init, key)``.  With ``step=None``
        the newest loadable checkpoint is used; failures are logged and older ones tried.
        Returns ``(state, step)``; raises ``CheckpointError`` if nothing loads.
        """
        candidates = [step] if step is not None else list(reversed(self.steps()))
        if not candidates:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        target = jax.tree.map(_as_restore_target, abstract_state)
        errors = []
        for candidate in candidates:
            try:
                state = self._manager.restore(candidate, args=ocp.args.StandardRestore(target))
                return state, candidate
            except Exception as err:  # orbax raises many types for damaged files
                reason = f"{type(err).__name__}: {str(err)[:300]}"  # orbax may dump whole trees
                log.warning("checkpoint %s/%s is unreadable (%s); trying an older one",
                            self.directory, candidate, reason)
                errors.append(f"step {candidate}: {reason}")
        raise CheckpointError(f"no checkpoint in {self.directory} could be restored:\n" + "\n".join(errors))

    def close(self) -> None:
        self._manager.close()


def _as_restore_target(leaf):
    # Restore onto the same devices/sharding the freshly initialised state would use.
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        sharding = getattr(leaf, "sharding", None)
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
    return leaf
