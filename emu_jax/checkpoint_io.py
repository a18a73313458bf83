"""The emu_jax model checkpoint folder: `emu_jax.json` (what the model is) + Orbax `params/`.

Written by the converters (`emu-video convert`) and read by sampling and
fine-tuning. `emu_jax.json` holds `format: "emu_jax"`, a version and the
model description (`EmuConfig.to_dict()`: unet, vae, text_encoders, ...);
`params/` is a `StandardCheckpointer` save of `{"unet", "vae", "text": {"0", ...}}`.
Tokenizer folders named by the text encoders sit beside them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

FORMAT = "emu_jax"
VERSION = 1
META_FILE = "emu_jax.json"
PARAMS_DIR = "params"


def save_checkpoint(path: str, meta: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Write `path/emu_jax.json` and `path/params` (the folder may exist but must not hold params yet)."""
    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    if os.path.exists(os.path.join(path, PARAMS_DIR)):
        raise FileExistsError(f"{os.path.join(path, PARAMS_DIR)} already exists; choose a new output folder")
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(path, PARAMS_DIR), dict(params))
    ckptr.wait_until_finished()
    with open(os.path.join(path, META_FILE), "w") as f:
        json.dump({"format": FORMAT, "version": VERSION, **meta}, f, indent=2)


def load_meta(path: str) -> dict[str, Any]:
    """Read and validate `path/emu_jax.json`."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f"not an emu_jax checkpoint: {path} has no {META_FILE}")
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("version", 0)) > VERSION:
        raise ValueError(f"{meta_path}: version {meta['version']} is newer than this emu_jax reads ({VERSION})")
    return meta


def load_checkpoint(path: str, target: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (meta, params). `target` (arrays or ShapeDtypeStructs with shardings) restores onto a mesh;
    without it params come back as host numpy arrays."""
    import orbax.checkpoint as ocp

    meta = load_meta(path)
    params_path = os.path.join(os.path.abspath(path), PARAMS_DIR)
    if not os.path.isdir(params_path):
        raise FileNotFoundError(f"emu_jax checkpoint {path} has {META_FILE} but no {PARAMS_DIR}/ folder")
    ckptr = ocp.StandardCheckpointer()
    params = ckptr.restore(params_path, target) if target is not None else ckptr.restore(params_path)
    return meta, params
