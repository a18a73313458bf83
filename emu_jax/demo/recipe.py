"""The demo recipe: moving-shapes data -> VAE -> text-to-image -> F (temporal) -> I, then export.

Every stage is an ordinary training run in its own folder under the recipe's
workdir (`data/`, `vae/`, `t2i/`, `t2v/`, `interp/`), configured by
configs/demo/shapes.py and chained with `train.init_from`. Re-running the
recipe resumes an interrupted stage from its newest checkpoint and skips
finished ones; `recipe.json` records each stage's measured wall time
(summed over resumes) and the exported model folder.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Callable, Sequence

import ml_collections

from emu_jax.config import apply_override, load_config

log = logging.getLogger(__name__)
STAGES = ("data", "vae", "t2i", "t2v", "interp", "export")
TRAIN_STAGES = ("vae", "t2i", "t2v", "interp")
SIZES = ("default", "tiny")
RECORD = "recipe.json"
EXPORT = "demo_model"
INIT_FROM = {"t2i": "vae", "t2v": "t2i", "interp": "t2v"}


def stage_config(
    stage: str,
    size: str,
    workdir: str | pathlib.Path,
    *,
    latent_scale: dict | None = None,
    overrides: Sequence[tuple[str, str]] = (),
) -> ml_collections.ConfigDict:
    """The config of one training stage, pointed at the recipe's data and previous stage.

    `overrides`: (dotted key, value) pairs applied last, e.g. ("train.steps", "10").
    """
    if stage not in TRAIN_STAGES:
        raise ValueError(f"stage {stage!r} is not a training stage; choose from {TRAIN_STAGES}")
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")
    workdir = pathlib.Path(workdir).absolute()
    cfg = load_config(f"demo/shapes.py:{stage},{size}")
    cfg.data.data_dir = str(workdir / "data")
    if stage in INIT_FROM:
        cfg.train.init_from = str(workdir / INIT_FROM[stage])
    if stage != "vae" and latent_scale is not None:
        cfg.model.vae.scaling_factor = float(latent_scale["scaling_factor"])
        cfg.model.vae.shift_factor = float(latent_scale["shift_factor"])
    for key, value in overrides:
        apply_override(cfg, key, str(value))
    return cfg


class Record:
    """`recipe.json`: per-stage status and seconds, rewritten after every stage."""

    def __init__(self, workdir: pathlib.Path, size: str):
        self.path = workdir / RECORD
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {"size": size, "stages": {}}
        if self.data.get("size") != size:
            raise ValueError(
                f"{workdir} holds a recipe of size {self.data.get('size')!r}, not {size!r}; use another --workdir"
            )

    def stage(self, name: str) -> dict:
        return self.data["stages"].setdefault(name, {"seconds": 0.0, "done": False})

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2))


def build_data(workdir: pathlib.Path, size: str) -> str:
    """Renders and writes the moving-shapes dataset (no-op when already prepared)."""
    from emu_jax.data import builders
    from emu_jax.demo.dataset import MovingShapes

    d = load_config(f"demo/shapes.py:t2v,{size}").dataset
    builders.prepare(MovingShapes(data_dir=str(workdir / "data"), **d.to_dict()))
    return str(workdir / "data")


def _finished(cfg, run_dir: pathlib.Path) -> bool:
    from emu_jax.training.vae_train import is_finished

    return is_finished(cfg, run_dir)


def _with_tokenizer_copy(model: dict, folder: pathlib.Path) -> dict:
    """`model` with each tokenizer folder copied into `folder/tokenizer` and named relative to it, so the
    exported model loads (`emu-video sample`) on a machine without this demo's files."""
    import copy
    import shutil

    from emu_jax.models.tokenizers import BUILTIN

    model = copy.deepcopy(dict(model))
    for i, te in enumerate(model.get("text_encoders", [])):
        if te.get("tokenizer") not in BUILTIN:
            name = "tokenizer" if i == 0 else f"tokenizer_{i}"
            shutil.copytree(te["tokenizer"], folder / name, dirs_exist_ok=True)
            te["tokenizer"] = name
    return model


def export(workdir: pathlib.Path, size: str, latent_scale: dict, out: pathlib.Path | None = None) -> pathlib.Path:
    """F (from the t2v run) -> `out`, I (from the interp run, bfloat16) -> `out/interp`; weights only."""
    import jax
    import numpy as np

    from emu_jax import checkpoint_io

    out = pathlib.Path(out or workdir / EXPORT)
    for stage, folder in (("t2v", out), ("interp", out / "interp")):
        if (folder / checkpoint_io.META_FILE).is_file():
            continue
        cfg = stage_config(stage, size, workdir, latent_scale=latent_scale)
        meta, params = checkpoint_io.load_checkpoint(str(workdir / stage))
        if stage == "interp":
            # I is stored in bfloat16 so F + I fit the package's 50 MB budget; Flax promotes the
            # weights back to the fp32 activations, so only the weights' rounding changes.
            params = jax.tree.map(
                lambda x: (
                    np.asarray(x).astype(jax.numpy.bfloat16) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
                ),
                params,
            )
        checkpoint_io.save_checkpoint(
            str(folder),
            {
                "kind": "model",
                "task": cfg.train.task,
                "model": _with_tokenizer_copy(meta["model"], folder),
                "diffusion": cfg.diffusion.to_dict(),
                "sampling": cfg.sampling.to_dict(),
                "slots": cfg.train.slots.to_dict(),
                "trained_steps": int(meta.get("step", 0)),
                "recipe": f"emu-video demo train --size {size}",
            },
            params,
        )
    return out


def run_recipe(
    workdir: str | pathlib.Path,
    size: str = "default",
    *,
    stages: Sequence[str] = STAGES,
    overrides: Sequence[tuple[str, str]] = (),
    stop_after: int | None = None,
    make_loader: Callable | None = None,
) -> dict:
    """Runs (or resumes) the recipe's `stages` in order; returns the `recipe.json` record.

    `overrides` apply to every training stage (e.g. ("train.steps", "3")).
    `stop_after`: each training stage stops (with a checkpoint) after this
    many steps of this call, as a preemption would.
    """
    bad = [s for s in stages if s not in STAGES]
    if bad or size not in SIZES:
        raise ValueError(f"stages {bad} / size {size!r}: allowed stages {STAGES}, sizes {SIZES}")
    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    for stage in TRAIN_STAGES:  # every config error before any work
        stage_config(stage, size, workdir, overrides=overrides)
    record = Record(workdir, size)
    scale = None
    for stage in STAGES:
        if stage not in stages:
            continue
        entry = record.stage(stage)
        t0 = time.perf_counter()
        if stage == "data":
            build_data(workdir, size)
        elif stage == "export":
            scale = scale or _scale(workdir, size, overrides, make_loader)
            entry["folder"] = str(export(workdir, size, scale))
        else:
            if stage != "vae":
                scale = scale or _scale(workdir, size, overrides, make_loader)
            cfg = stage_config(stage, size, workdir, latent_scale=scale, overrides=overrides)
            run_dir = workdir / stage
            if not _finished(cfg, run_dir):
                log.info("stage %s: training %d steps in %s", stage, cfg.train.steps, run_dir)
                if stage == "vae":
                    from emu_jax.training.vae_train import train_vae as train_fn
                else:
                    from emu_jax.training.loop import train as train_fn
                entry["last_metrics"] = train_fn(cfg, run_dir, make_loader=make_loader, stop_after=stop_after)
            entry["steps"] = cfg.train.steps
        entry["seconds"] = round(entry["seconds"] + time.perf_counter() - t0, 1)
        entry["done"] = stage in ("data", "export") or _finished(cfg, workdir / stage)
        record.save()
        if not entry["done"]:
            log.warning("stage %s stopped before its last step; re-run to resume", stage)
            break
        log.info("stage %s done (%.1f s in total)", stage, entry["seconds"])
    return record.data


def _scale(workdir: pathlib.Path, size: str, overrides, make_loader) -> dict:
    """The trained VAE's latent mean / std (measured once, cached in vae/latent_scale.json)."""
    from emu_jax.training.vae_train import latent_scale

    cfg = stage_config("vae", size, workdir, overrides=overrides)
    return latent_scale(cfg, workdir / "vae", make_loader=make_loader)
