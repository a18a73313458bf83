"""Convert pytorch-fid's FID Inception weights (`pt_inception-2015-12-05-6726825d.pth`) into our params.

The file is a plain state dict of torchvision's Inception3 with the FID
blocks; we read it with `torch.load(weights_only=True)` (no code runs) or
from a .safetensors copy. The 1008-way `fc` head is not needed for pool3
features and is dropped.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from emu_jax.convert.common import ConversionChecker, load_safetensors_dir
from emu_jax.convert.torch_names import module_path

_BN_LEAF = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def load_torch_state(path: str) -> dict[str, np.ndarray]:
    """A .pth / .pt state dict (tensors only) or .safetensors file -> {key: numpy}."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    if path.endswith(".safetensors"):
        return load_safetensors_dir(path)
    try:
        import torch
    except ImportError as e:  # torch is only needed to read .pth files
        raise ImportError(f"reading {path!r} needs torch; or convert it to .safetensors first") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip / weights_only errors have many types; name the file
        raise ValueError(f"cannot read {path!r} as a PyTorch state dict: {str(e).splitlines()[0]}") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict")
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def convert_state(state: dict[str, np.ndarray]) -> dict:
    """pytorch-fid Inception state dict -> our FIDInceptionV3 params (raises naming every mismatch)."""
    from emu_jax.metrics import inception

    target = jax.eval_shape(inception.init_params, jax.random.key(0))
    checker = ConversionChecker(state, target)
    ignored = [k for k in state if k.startswith("fc.") or k.endswith("num_batches_tracked")]
    for key in state:
        if key in ignored:
            continue
        mod, leaf = module_path(key)
        if mod and mod[-1] == "conv" and leaf == "weight":
            checker.assign(mod + ("kernel",), key, "conv")
        elif mod and mod[-1] == "bn" and leaf in _BN_LEAF:
            checker.assign(mod + (_BN_LEAF[leaf],), key)
        else:
            checker.assign(mod + (leaf,), key)  # reported as a path the model lacks
    return checker.finish(ignore_unused=ignored)


def load_fid_inception(path: str) -> dict:
    """Path to the FID Inception weights -> params for `emu_jax.metrics.inception.features`."""
    return convert_state(load_torch_state(path))
