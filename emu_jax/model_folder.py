"""Model folders: what `--checkpoint` and `train.init_from` name, a folder with `emu_jax.json` + params.

(The Orbax step checkpoints of a training run are written and resumed by `emu_jax.training.checkpoint`.)

Two kinds share the same `emu_jax.json` (`format: "emu_jax"`, a version and
the model description, `EmuConfig.to_dict()`, at top level or under "model"):
- an exported / converted model: `params/`, a `StandardCheckpointer` save of
  `{"unet", "vae", "text": {"0", ...}}` (written by `emu-video convert`);
- a training workdir: `checkpoints/<step>/` of `emu-video train`, whose newest
  complete step is read (EMA weights preferred).
Either can be given to `emu-video sample --checkpoint` or to `train.init_from`.
Tokenizer folders named by the text encoders sit beside them.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Mapping

import jax
import numpy as np

from emu_jax.errors import UserError, root_cause

FORMAT = "emu_jax"
VERSION = 1
META_FILE = "emu_jax.json"
PARAMS_DIR = "params"


class CheckpointError(UserError):
    """A checkpoint that cannot be used: corrupt, incomplete, or of another format or model."""


class NotACheckpointError(CheckpointError, FileNotFoundError):
    """A folder that is not (or not yet) an emu_jax checkpoint."""


def save_checkpoint(path: str, meta: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Write `path/params` then `path/emu_jax.json` (last, so a partial save is no checkpoint).

    The folder may exist but must not hold params yet.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    if os.path.exists(os.path.join(path, PARAMS_DIR)):
        raise FileExistsError(f"{os.path.join(path, PARAMS_DIR)} already exists; choose a new output folder")
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(path, PARAMS_DIR), jax.tree.map(np.asarray, dict(params)))
    ckptr.wait_until_finished()
    if jax.process_index() == 0:
        with open(os.path.join(path, META_FILE), "w") as f:
            json.dump({"format": FORMAT, "version": VERSION, **meta}, f, indent=2)


def load_meta(path: str) -> dict[str, Any]:
    """Read and validate `path/emu_jax.json`."""
    if not os.path.isdir(path):
        raise NotACheckpointError(f"not an emu_jax checkpoint: {path} is not a folder")
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_path):
        raise NotACheckpointError(f"not an emu_jax checkpoint: {path} has no {META_FILE}")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{meta_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{meta_path}: format is {found!r}, expected {FORMAT!r}")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{meta_path}: version {meta['version']} is newer than this emu_jax reads ({VERSION})")
    return meta


def model_config_dict(meta: Mapping[str, Any]) -> dict:
    """The EmuConfig dict of a checkpoint (under 'model' for training runs, top level for converters)."""
    if "model" in meta:
        return dict(meta["model"])
    keys = ("unet", "vae", "text_encoders", "resolution", "num_frames", "fps")
    return {k: meta[k] for k in keys if k in meta}


def normalize_params(params: Mapping[str, Any]) -> dict:
    """Bundle params with text encoders keyed "0", "1", ... (lists become dicts)."""
    out = dict(params)
    if isinstance(out.get("text"), (list, tuple)):
        out["text"] = {str(i): p for i, p in enumerate(out["text"])}
    return out


def cast_floats(params: Any, dtype: Any) -> Any:
    """`params` with every floating leaf (array or ShapeDtypeStruct) in `dtype`; other leaves unchanged."""
    dtype = jax.numpy.dtype(dtype)

    def cast(x):
        if not jax.numpy.issubdtype(x.dtype, jax.numpy.floating) or x.dtype == dtype:
            return x
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(x.shape, dtype, sharding=x.sharding)
        return x.astype(dtype)

    return jax.tree.map(cast, params)


def _latest_step(run_dir: str) -> int:
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(
        os.path.join(run_dir, "checkpoints"), options=ocp.CheckpointManagerOptions(create=False, read_only=True)
    )
    step = mngr.latest_step()
    mngr.close()
    if step is None:
        raise NotACheckpointError(f"training run {run_dir} has no complete checkpoint yet")
    return step


@contextlib.contextmanager
def _explain(params_path: str):
    """A failed restore becomes one line naming the folder and the innermost cause (which names the file)."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as e:  # Orbax raises asyncio groups / ValueError / OSError for a broken save
        raise CheckpointError(
            f"checkpoint {params_path} cannot be read ({root_cause(e)}); it is truncated, "
            "incomplete or of another model: convert / export it again"
        ) from e


def load_checkpoint(path: str, target: Any = None, prefer_ema: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (meta, params) from either checkpoint kind.

    `target` (arrays or ShapeDtypeStructs with shardings) restores an exported
    model onto a mesh; without it params come back as host numpy arrays. A
    training run gives `merge(ema or trainable, frozen)` of its newest step and
    `meta["step"]`.
    """
    import orbax.checkpoint as ocp

    meta = load_meta(path)
    path = os.path.abspath(path)
    ckptr = ocp.StandardCheckpointer()
    if os.path.isdir(os.path.join(path, PARAMS_DIR)):
        params_path = os.path.join(path, PARAMS_DIR)
        with _explain(params_path):
            params = ckptr.restore(params_path, target) if target is not None else ckptr.restore(params_path)
        return meta, normalize_params(params)
    if not os.path.isdir(os.path.join(path, "checkpoints")):
        raise NotACheckpointError(
            f"emu_jax checkpoint {path} has {META_FILE} but neither {PARAMS_DIR}/ nor checkpoints/"
        )
    if target is not None:
        raise ValueError("restoring onto a target is for exported models; a training run resumes with emu-video train")
    from emu_jax.models.trainable import merge_params

    step = _latest_step(path)
    state_path = os.path.join(path, "checkpoints", str(step), "state")
    with _explain(state_path):
        # Only the weights: the optimiser's slots (twice the trainable params) are never read.
        reader = ocp.PyTreeCheckpointer()
        tree = reader.metadata(state_path).item_metadata.tree
        weights = "ema" if prefer_ema and tree.get("ema") else "trainable"
        item = {k: tree[k] for k in (weights, "frozen") if tree.get(k)}  # a run may freeze nothing
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
        state = reader.restore(state_path, args=ocp.args.PyTreeRestore(item, as_numpy, partial_restore=True))
    params = jax.tree.map(np.asarray, merge_params(state.get(weights, {}), state.get("frozen", {})))
    return {**meta, "step": step}, normalize_params(params)
