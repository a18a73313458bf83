"""Shared helpers for converting PyTorch checkpoints (safetensors) into Flax param trees.

Every converter (U-Net, VAE, CLIP, T5) follows the same recipe: load the
state dict as numpy, read config.json, build the Flax param tree with
`jax.eval_shape(model.init, ...)` or a real init, fill each leaf from a torch
key with the right layout change, then let `ConversionChecker` fail loudly
if any checkpoint key was not consumed, any target leaf was not filled, or a
shape did not match.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

SAFETENSORS_INDEX = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")


def _load_safetensors_file(path: str) -> dict[str, np.ndarray]:
    """One .safetensors file -> {key: float32/int numpy array} (bf16/fp16 upcast to float32)."""
    from safetensors import safe_open  # local import: only converters need it

    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(path, framework="np") as f:
            for key in f.keys():
                out[key] = np.asarray(f.get_tensor(key))
    except TypeError:  # bf16 is not representable in numpy: go through torch
        from safetensors.torch import load_file

        for key, t in load_file(path).items():
            out[key] = (t.float() if t.is_floating_point() else t).numpy()
    for key, arr in out.items():
        if arr.dtype in (np.float16,) or arr.dtype.name == "bfloat16":
            out[key] = arr.astype(np.float32)
    return out


def load_safetensors_dir(path: str) -> dict[str, np.ndarray]:
    """Load a state dict from a safetensors file, a folder with one file, or a sharded folder.

    Sharded folders are recognised by `*.safetensors.index.json` (its
    `weight_map` names the shard of each key). Raises FileNotFoundError naming
    the path when nothing loadable is there.
    """
    if os.path.isfile(path):
        if not path.endswith(".safetensors"):
            raise FileNotFoundError(f"{path!r} is not a .safetensors file")
        return _load_safetensors_file(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint path {path!r} does not exist")
    for index_name in SAFETENSORS_INDEX:
        index_path = os.path.join(path, index_name)
        if os.path.isfile(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            state: dict[str, np.ndarray] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_load_safetensors_file(os.path.join(path, shard)))
            return state
    files = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(
            f"no .safetensors file (or *.safetensors.index.json) in {path!r}; "
            "save the PyTorch model with save_pretrained(..., safe_serialization=True)"
        )
    if len(files) > 1:
        raise FileNotFoundError(
            f"{path!r} holds several .safetensors files {files} but no index json naming the shards"
        )
    return _load_safetensors_file(os.path.join(path, files[0]))


def read_config_json(path: str) -> dict[str, Any]:
    """Read `config.json` from a folder (or the given json file)."""
    cfg_path = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"no config.json at {cfg_path!r}")
    with open(cfg_path) as f:
        return json.load(f)


def torch_to_flax(array: np.ndarray, kind: str) -> np.ndarray:
    """Change a PyTorch weight's layout to Flax's.

    kind: 'conv' (O, I, kh, kw) -> (kh, kw, I, O); 'conv1d' (O, I, k) -> (k, I, O);
    'linear' (O, I) -> (I, O); 'conv1x1_as_linear' (O, I, 1, 1) -> (I, O);
    'none' leaves it as is (biases, norm scales, embeddings).
    """
    if kind == "conv":
        return np.transpose(array, (2, 3, 1, 0))
    if kind == "conv1d":
        return np.transpose(array, (2, 1, 0))
    if kind == "linear":
        return np.transpose(array, (1, 0))
    if kind == "conv1x1_as_linear":
        if array.ndim != 4 or array.shape[2:] != (1, 1):
            raise ValueError(f"expected a (O, I, 1, 1) conv weight, got shape {array.shape}")
        return np.transpose(array[:, :, 0, 0], (1, 0))
    if kind == "none":
        return array
    raise ValueError(f"unknown layout kind {kind!r}; allowed: conv, conv1d, linear, conv1x1_as_linear, none")


def flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Nested dict -> {path tuple: leaf}."""
    out: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """{path tuple: leaf} -> nested dict."""
    out: dict[str, Any] = {}
    for path, leaf in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = leaf
    return out


class ConversionChecker:
    """Fills a Flax param tree from a torch state dict and collects every problem by name.

    Usage: `c = ConversionChecker(state_dict, target_params)`;
    `c.assign(("conv_in", "kernel"), "conv_in.weight", "conv")` for each pair;
    `params = c.finish(required=lambda path: ...)`. `finish` raises one
    ValueError that lists unknown/unused torch keys, unfilled Flax leaves and
    shape mismatches; leaves not required keep their value from `target_params`
    (e.g. freshly initialised temporal layers).
    """

    def __init__(self, state_dict: Mapping[str, np.ndarray], target_params: Mapping[str, Any]):
        self.state = dict(state_dict)
        self.target = flatten(target_params)
        self.filled: dict[tuple[str, ...], np.ndarray] = {}
        self.used: set[str] = set()
        self.missing_keys: list[str] = []
        self.bad_shapes: list[str] = []
        self.unknown_paths: list[str] = []

    def assign(self, path: tuple[str, ...] | str, key: str, kind: str = "none") -> None:
        """Copy torch `key` (layout `kind`, see `torch_to_flax`) into Flax leaf `path` ('a/b/c' or tuple)."""
        if isinstance(path, str):
            path = tuple(path.split("/"))
        if key not in self.state:
            self.missing_keys.append(key)
            return
        self.used.add(key)
        if path not in self.target:
            self.unknown_paths.append("/".join(path) + f" (for {key})")
            return
        value = torch_to_flax(np.asarray(self.state[key]), kind)
        want = tuple(self.target[path].shape)
        if tuple(value.shape) != want:
            self.bad_shapes.append(f"{key} {tuple(self.state[key].shape)} -> {'/'.join(path)} expects {want}")
            return
        self.filled[path] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value

    def finish(self, required=lambda path: True, ignore_unused: Iterable[str] = ()) -> dict[str, Any]:
        """Return the filled nested param dict, or raise ValueError listing every problem."""
        problems = []
        unused = sorted(set(self.state) - self.used - set(ignore_unused))
        unfilled = sorted("/".join(p) for p in self.target if required(p) and p not in self.filled)
        if self.missing_keys:
            problems.append(f"checkpoint lacks keys: {sorted(self.missing_keys)}")
        if unused:
            problems.append(f"unexpected checkpoint keys (not consumed): {unused}")
        if self.bad_shapes:
            problems.append(f"shape mismatches: {self.bad_shapes}")
        if self.unknown_paths:
            problems.append(f"converter targets params the model does not have: {self.unknown_paths}")
        if unfilled:
            problems.append(f"model params not filled from the checkpoint: {unfilled}")
        if problems:
            raise ValueError("checkpoint conversion failed:\n  " + "\n  ".join(problems))
        merged = {p: (self.filled[p] if p in self.filled else np.asarray(v)) for p, v in self.target.items()}
        return unflatten(merged)
