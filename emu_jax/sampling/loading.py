"""Open a model folder for inference: what it is (cheap, `emu_jax.json` only) and its weights.

`describe_checkpoint` reads the meta file alone, so command lines can validate
against a checkpoint before loading params or compiling; `load_model` gives the
`EmuModel`, params (host numpy), schedule and prediction the sampler needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Mapping

from emu_jax import conditioning, model_folder
from emu_jax.diffusion.schedules import Schedule, make_schedule

# A checkpoint without a "diffusion" section (e.g. a converted model) gets the recipe's defaults.
DEFAULT_DIFFUSION = dict(
    beta_schedule="scaled_linear",
    num_train_steps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    zero_terminal_snr=True,
    prediction="v",
)
VIDEO_TASKS = ("t2v", "t2i")


@dataclasses.dataclass
class LoadedModel:
    """One checkpoint: its meta, `EmuModel`, params (host numpy until the Pipeline places them) and schedule."""

    path: str
    meta: dict
    model: Any
    params: Any
    task: str
    schedule: Schedule
    prediction: str
    layout: conditioning.SlotLayout | None = None


def checkpoint_task(meta: Mapping[str, Any], config: Any) -> str:
    """'t2i' | 't2v' | 'interp': a training run's task, else guessed from the U-Net's inputs."""
    if meta.get("task"):
        return str(meta["task"])
    if config.unet.cond_level_embed:
        return "interp"
    return "t2v" if config.unet.temporal and config.unet.cond_channels else "t2i"


def describe_checkpoint(path: str) -> tuple[dict, Any, str, Schedule, str]:
    """(meta, EmuConfig, task, schedule, prediction) from `emu_jax.json` alone: cheap, for validation."""
    from emu_jax.models.emu import EmuConfig

    meta = model_folder.load_meta(str(path))
    config = EmuConfig.from_dict(model_folder.model_config_dict(meta))
    d = {**DEFAULT_DIFFUSION, **dict(meta.get("diffusion") or {})}
    schedule = make_schedule(
        d["beta_schedule"],
        int(d["num_train_steps"]),
        float(d["beta_start"]),
        float(d["beta_end"]),
        bool(d["zero_terminal_snr"]),
    )
    return meta, config, checkpoint_task(meta, config), schedule, str(d["prediction"])


def load_model(path: str) -> LoadedModel:
    """Read a checkpoint (exported model or training workdir; EMA weights preferred)."""
    from emu_jax.models.emu import EmuModel

    meta, config, task, schedule, prediction = describe_checkpoint(path)
    meta, params = model_folder.load_checkpoint(str(path), prefer_ema=True)
    layout = (
        conditioning.SlotLayout(**meta["slots"])
        if task == "interp" and meta.get("slots")
        else (conditioning.SlotLayout() if task == "interp" else None)
    )
    return LoadedModel(str(path), meta, EmuModel(config, root=path), params, task, schedule, prediction, layout)


def find_interp_checkpoint(path: str, interp_checkpoint: str | None) -> str | None:
    """The interpolation model: `interp_checkpoint`, else `<path>/interp/` when it holds one, else None."""
    if interp_checkpoint:
        return interp_checkpoint
    sub = os.path.join(path, "interp")
    return sub if os.path.isfile(os.path.join(sub, model_folder.META_FILE)) else None


def checkpoint_id(path: str) -> str:
    """A short fingerprint of a checkpoint folder: its meta file's bytes and every other file's name and size.

    Cheap (no weights read) and stable across copies, so a rerun can tell "same model" from "another one".
    """
    h = hashlib.sha256()
    root = os.path.abspath(path)
    with open(os.path.join(root, model_folder.META_FILE), "rb") as f:
        h.update(f.read())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), root) != "interp")
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(f"{os.path.relpath(full, root)}:{os.path.getsize(full)}\n".encode())
    return h.hexdigest()[:16]
