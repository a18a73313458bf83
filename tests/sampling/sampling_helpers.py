"""Tiny random F and I models for the sampling tests, and saving them as emu_jax checkpoints."""

from __future__ import annotations

import os

import jax
import numpy as np

from emu_jax import conditioning, model_folder
from emu_jax.config import load_config
from emu_jax.models.emu import EmuConfig, EmuModel
from emu_jax.sampling.loading import LoadedModel, describe_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYOUT = dict(num_given=4, factor=2, pad=1)  # 9 slots; F's 8 frames are two halves -> 16 frames


def tiny_cfg(task: str):
    return load_config(os.path.join(REPO, "configs", "tiny.py") + ":" + task)


def tiny_model(task: str, seed: int) -> LoadedModel:
    """A random tiny model of `task` ('t2v' or 'interp') as the Pipeline takes it."""
    cfg = tiny_cfg(task)
    model = EmuModel(EmuConfig.from_dict(cfg.model.to_dict()))
    params = jax.tree.map(np.asarray, model.init(jax.random.key(seed)))
    # Random temporal / conditioning weights, so the tests see them act (init is identity / zero).
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    rng = np.random.default_rng(seed)
    new = []
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path)
        if ("temporal" in name or "cond" in name) and leaf.ndim >= 1:
            leaf = leaf + 0.05 * rng.standard_normal(leaf.shape).astype(leaf.dtype)
        new.append(leaf)
    params = jax.tree_util.tree_unflatten(treedef, new)
    d = cfg.diffusion
    meta = {
        "kind": "test",
        "task": task,
        "model": model.config.to_dict(),
        "diffusion": d.to_dict(),
        "sampling": cfg.sampling.to_dict(),
        "slots": dict(LAYOUT),
    }
    _, _, _, schedule, prediction = sampling_meta(meta)
    layout = conditioning.SlotLayout(**LAYOUT) if task == "interp" else None
    return LoadedModel(f"<tiny {task}>", meta, model, params, task, schedule, prediction, layout)


def sampling_meta(meta):
    """describe_checkpoint's view of an in-memory meta (no folder needed)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, model_folder.META_FILE), "w") as f:
            json.dump({"format": "emu_jax", "version": 1, **meta}, f)
        return describe_checkpoint(d)


def save(loaded: LoadedModel, path: str, params=None) -> str:
    model_folder.save_checkpoint(path, loaded.meta, loaded.params if params is None else params)
    return path
