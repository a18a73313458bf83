"""Start a stage from another checkpoint (`train.init_from`): overlay matching params.

Stages chain: a converted T2I checkpoint or the T2I stage -> F (new temporal
layers keep their identity init, the conditioning conv its zero init) -> I.
Params present in both with the same shape are taken from the checkpoint;
a `(k, 1, 1)` temporal conv kernel loads into a `(k, s, s)` one at its spatial
centre (`temporal_spatial_kernel`; the same function); any other shape
mismatch is an error naming the param.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import traverse_util

from emu_jax import checkpoint_io


def load_init_params(path: str) -> dict:
    return checkpoint_io.load_checkpoint(path)[1]


def _grow_temporal_kernel(key: tuple, old: Any, new: Any) -> Any:
    """A 1D temporal conv kernel `(k, 1, 1, C, C)` placed at the centre of a `(k, s, s, C, C)` one, or None."""
    o, n = tuple(old.shape), tuple(new.shape)
    if not (any(str(p).startswith("temporal_") for p in key) and key[-1] == "kernel" and len(o) == 5 == len(n)
            and o[1:3] == (1, 1) and (o[0], o[3], o[4]) == (n[0], n[3], n[4])):
        return None
    grown = jnp.zeros(n, new.dtype)
    return grown.at[:, n[1] // 2, n[2] // 2].set(jnp.asarray(old, new.dtype)[:, 0, 0])


def overlay_params(fresh: Any, loaded: Any) -> tuple[dict, str]:
    """Fresh params with every loaded leaf copied in; returns (params, a one-line report)."""
    new = traverse_util.flatten_dict(dict(fresh))
    old = traverse_util.flatten_dict(dict(loaded))
    for k in [k for k in old if k in new and tuple(old[k].shape) != tuple(new[k].shape)]:
        grown = _grow_temporal_kernel(k, old[k], new[k])
        if grown is not None:
            old[k] = grown
    mismatched = [f"{'/'.join(k)}: checkpoint {old[k].shape} vs model {new[k].shape}"
                  for k in old if k in new and tuple(old[k].shape) != tuple(new[k].shape)]
    if mismatched:
        raise ValueError("init_from checkpoint does not fit the model: " + "; ".join(mismatched[:10]))
    taken = [k for k in old if k in new]
    for k in taken:
        new[k] = jnp.asarray(old[k], new[k].dtype)
    kept = len(new) - len(taken)
    unused = [k for k in old if k not in new]
    report = f"{len(taken)} params loaded, {kept} kept from init, {len(unused)} in the checkpoint unused"
    if unused:
        report += " (e.g. " + ", ".join("/".join(k) for k in unused[:3]) + ")"
    return traverse_util.unflatten_dict(new), report
