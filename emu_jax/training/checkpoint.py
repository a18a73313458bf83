"""Orbax checkpointing for a training run: one manager, one step holds everything.

A step directory holds the train state (params, optimiser state, EMA, step),
the data iterator's position and the config, written asynchronously and
committed atomically by Orbax (a step is visible only once complete), so a
`kill -9` mid-save leaves the previous step as the newest one to resume from.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import pathlib
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp

from emu_jax.data.pipeline import iterator_checkpoint_args
from emu_jax.errors import root_cause
from emu_jax.model_folder import CheckpointError


@functools.cache  # once per process: the registry is Orbax's global one
def _save_each_array_once_on_cpu() -> None:
    """On the CPU backend, Orbax's replica-parallel save (each replica of an array writes a slice of it)
    only adds a compiled slice per device and array, as every device is the same host's memory: a tiny
    model's first save on 8 CPU devices took 24 s with it, 1.6 s without (medians)
    (benchmarks/checkpoint_save.py). Orbax already turns it off on GPUs; TPUs keep it."""
    if jax.default_backend() != "cpu":
        return
    default = ocp.type_handlers.get_type_handler(jax.Array)
    handler = ocp.type_handlers.ArrayHandler(
        use_replica_parallel=False,
        # Orbax's default handler persists per-array metadata; keep that where this version has it.
        array_metadata_store=getattr(default, "_array_metadata_store", None),
    )
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # Orbax warns on every override, which is the point here
    try:
        ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)
    finally:
        absl.setLevel(level)


class RunCheckpointer:
    """Save / restore {state, data iterator, config} under `workdir/checkpoints`."""

    def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"checkpoint keep must be >= 1, got {keep}")
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self._keep, self._async_save = keep, async_save
        self._reader: ocp.CheckpointManager | None = None
        self._writer: ocp.CheckpointManager | None = None

    @property
    def manager(self) -> ocp.CheckpointManager:
        """The writing manager, opened at the first save: opening it deletes a killed save's partial
        step, so a resume refused or failed before then leaves the run folder as it was."""
        if self._writer is None:
            _save_each_array_once_on_cpu()
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self._keep,
                create=True,
                enable_async_checkpointing=self._async_save,
                cleanup_tmp_directories=True,
            )
            self._writer = ocp.CheckpointManager(self.directory, options=options)
        return self._writer

    def _reading(self) -> ocp.CheckpointManager:
        if self._writer is not None:
            return self._writer
        if self._reader is None:
            options = ocp.CheckpointManagerOptions(create=False, read_only=True)
            self._reader = ocp.CheckpointManager(self.directory, options=options)
        return self._reader

    def latest_step(self) -> int | None:
        return self._reading().latest_step()  # a missing folder reads as no steps, the same on every process

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
            restored = self._reading().restore(step, args=ocp.args.Composite(**items))
        return restored["state"]

    def restore_config(self, step: int) -> dict:
        with self._explain(step):
            config = self._reading().restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
            return dict(config["config"])

    @contextlib.contextmanager
    def _explain(self, step: int):
        """Any failure to read step `step` becomes one line naming its folder and the way out."""
        try:
            yield
        except Exception as e:  # Orbax raises many types (asyncio groups, ValueError, OSError) for a bad step
            older = [s for s in self._reading().all_steps() if s < step]
            way_out = (
                f"delete that folder to resume from step {max(older)}"
                if older
                else "delete that folder to start from step 0"
            ) + ", or train into a new --workdir"
            raise CheckpointError(
                f"checkpoint step {step} ({self.directory / str(step)}) cannot be restored: {root_cause(e)}; {way_out}"
            ) from e

    def wait(self) -> None:
        if self._writer is not None:
            self._writer.wait_until_finished()

    def close(self) -> None:
        for manager in (self._reader, self._writer):
            if manager is not None:
                manager.close()
        self._reader = self._writer = None


def abstract_like(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying target shardings: what `restore` needs."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
