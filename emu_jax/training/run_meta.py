"""A run folder's identity: `emu_jax.json`, written once, checked on every resume.

The model, task, diffusion and slot layout recorded there say what the
checkpoints mean (the sampler builds its model from it), so resuming with a
different one is refused before anything is written; other settings (LR,
steps, data, seed) may change on resume and are logged as a diff. Only an
explicit `rewrite=True` (`emu-video train --rewrite-meta`) rewrites it.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any, Iterator, Mapping

import ml_collections

from emu_jax.errors import UserError

log = logging.getLogger(__name__)

META_FILE = "emu_jax.json"
# What the weights mean: a change here makes the checkpoints another model.
IDENTITY_KEYS = ("task", "model", "diffusion", "slots")


def model_meta(cfg: ml_collections.ConfigDict, emu_cfg) -> dict:
    """The `emu_jax.json` of a training run (JSON-normalised: tuples become lists)."""
    meta = {
        "format": "emu_jax",
        "version": 1,
        "kind": "training_run",
        "task": cfg.train.task,
        "model": emu_cfg.to_dict(),
        "diffusion": cfg.diffusion.to_dict(),
        "sampling": cfg.sampling.to_dict() if "sampling" in cfg else {},
        "slots": cfg.train.slots.to_dict(),
    }
    return json.loads(json.dumps(meta, default=str))


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()  # a key one side does not have (a field added to the code after the run was written)


def flat_diff(old: Any, new: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs; a missing side is ABSENT."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in sorted(set(old) | set(new), key=str):
            yield from flat_diff(old.get(k, ABSENT), new.get(k, ABSENT), f"{prefix}.{k}" if prefix else str(k))
    elif old != new:
        yield prefix, old, new


def _describe(diffs: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    shown = "; ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def check_resume(workdir: pathlib.Path, meta: Mapping[str, Any]) -> dict | None:
    """The existing run's meta (None for a new run); UserError if the run is another model or task.

    Reads only, so a refused resume leaves the folder byte-identical.
    """
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir} is a file, not a run folder")
    ancestor = workdir.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise UserError(f"--workdir {workdir}: {ancestor} is not a writable folder")
    path = workdir / META_FILE
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is unreadable ({e}); restore it or start a new --workdir") from e
    diffs = [d for key in IDENTITY_KEYS for d in flat_diff(old.get(key, ABSENT), meta.get(key, ABSENT), key)]
    added = [d for d in diffs if d[1] is ABSENT]
    if added:  # fields newer than the run: its model had them at their defaults
        log.warning(
            "run %s predates config field(s) %s; resuming with them as given",
            workdir,
            ", ".join(f"{k}={n!r}" for k, _, n in added),
        )
    diffs = [d for d in diffs if d[1] is not ABSENT]
    if diffs:
        raise UserError(
            f"--workdir {workdir} is a run of another model ({_describe(diffs)}); resume it with "
            "its own config or train into a new --workdir (use train.init_from to start from it)"
        )
    return old


def log_changes(old_config: Mapping[str, Any], new_config: Mapping[str, Any]) -> list[str]:
    """Log (and return) the settings that differ from the checkpoint being resumed."""
    old = json.loads(json.dumps(dict(old_config), default=str))
    new = json.loads(json.dumps(dict(new_config), default=str))
    lines = [f"{k}: {o!r} -> {n!r}" for k, o, n in flat_diff(old, new)]
    if lines:
        log.warning("resuming with %d changed setting(s): %s", len(lines), "; ".join(lines))
    return lines


def write(workdir: pathlib.Path, meta: Mapping[str, Any]) -> None:
    """Write `emu_jax.json` atomically (a kill leaves the old file or the new one, never half of one)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = workdir / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, workdir / META_FILE)
