"""Orbax checkpointing for a training run: one manager, one step holds everything.

A step directory holds the train state (params, optimiser state, EMA, step),
the data iterator's position and the config, written asynchronously and
committed atomically by Orbax (a step is visible only once complete), so a
`kill -9` mid-save leaves the previous step as the newest one to resume from.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp

from emu_jax.checkpoint_io import CheckpointError
from emu_jax.data.pipeline import iterator_checkpoint_args
from emu_jax.errors import root_cause


class RunCheckpointer:
    """Save / restore {state, data iterator, config} under `workdir/checkpoints`."""

    def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"checkpoint keep must be >= 1, got {keep}")
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def reached_preemption(self, step: int) -> bool:
        """True at JAX's preemption sync point (all hosts agree), when a save-and-exit is due."""
        return self.manager.reached_preemption(step)

    def save(
        self,
        step: int,
        state: Any,
        *,
        data_iterator: Any = None,
        config: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = iterator_checkpoint_args(data_iterator)
        if config is not None:
            items["config"] = ocp.args.JsonSave(json.loads(json.dumps(dict(config), default=str)))
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, step: int, abstract_state: Any, *, data_iterator: Any = None) -> Any:
        """Restore the state onto the shardings of `abstract_state` (ShapeDtypeStructs with
        `.sharding`), so a run can resume on a different mesh; the data iterator is
        restored in place."""
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = iterator_checkpoint_args(data_iterator, restore=True)
        with self._explain(step):
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored["state"]

    def restore_config(self, step: int) -> dict:
        with self._explain(step):
            return dict(self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])

    @contextlib.contextmanager
    def _explain(self, step: int):
        """Any failure to read step `step` becomes one line naming its folder and the way out."""
        try:
            yield
        except Exception as e:  # Orbax raises many types (asyncio groups, ValueError, OSError) for a bad step
            older = [s for s in self.manager.all_steps() if s < step]
            way_out = (
                f"delete that folder to resume from step {max(older)}"
                if older
                else "delete that folder to start from step 0"
            ) + ", or train into a new --workdir"
            raise CheckpointError(
                f"checkpoint step {step} ({self.directory / str(step)}) cannot be restored: {root_cause(e)}; {way_out}"
            ) from e

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying target shardings: what `restore` needs."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
