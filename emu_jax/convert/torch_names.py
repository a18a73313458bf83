"""Name-driven torch -> Flax assignment for models whose Flax paths mirror torch module paths.

Our VAE, CLIP and T5 modules name submodules after their PyTorch twins with
'.N' folded into '_N' (`encoder.layers.3.mlp.fc1.weight` ->
`encoder/layers_3/mlp/fc1/kernel`), so one renaming rule plus a per-model
table of exceptions converts them; `ConversionChecker` reports what is left.
"""

from __future__ import annotations

from typing import Callable, Mapping

from emu_jax.convert.common import ConversionChecker

_LEAF_FOR_WEIGHT = ("kernel", "scale", "embedding")


def module_path(torch_key: str) -> tuple[tuple[str, ...], str]:
    """'a.b.0.c.weight' -> (('a', 'b_0', 'c'), 'weight'): numeric parts join the name before them."""
    parts = torch_key.split(".")
    out: list[str] = []
    for p in parts[:-1]:
        if p.isdigit() and out:
            out[-1] = f"{out[-1]}_{p}"
        else:
            out.append(p)
    return tuple(out), parts[-1]


def assign_by_name(checker: ConversionChecker, rename: Callable[[str], str | None] = lambda k: k) -> None:
    """Assign every torch key of `checker.state` to the Flax leaf its module path names.

    `rename(key)` maps a torch key to the key whose path to use (None: skip,
    leaving it unused so `finish` reports it unless ignored). A 'weight' goes
    to the module's `kernel` (conv / linear layout by rank), `scale` or
    `embedding`, whichever the target has.
    """
    target: Mapping[tuple[str, ...], object] = checker.target
    for key in list(checker.state):
        name = rename(key)
        if name is None:
            continue
        mod, leaf = module_path(name)
        if leaf == "bias":
            checker.assign(mod + ("bias",), key)
            continue
        if leaf != "weight":
            checker.assign(mod + (leaf,), key)
            continue
        found = [n for n in _LEAF_FOR_WEIGHT if mod + (n,) in target]
        if not found:
            checker.assign(mod + ("kernel",), key)  # reported as a path the model does not have
            continue
        ndim = checker.state[key].ndim
        if found[0] == "kernel":
            want = len(target[mod + ("kernel",)].shape)
            kind = {(4, 4): "conv", (3, 3): "conv1d", (2, 2): "linear", (4, 2): "conv1x1_as_linear"}.get(
                (ndim, want), "none"
            )
        else:
            kind = "none"
        checker.assign(mod + (found[0],), key, kind)
