"""Start a stage from another checkpoint (`train.init_from`): overlay matching params.

Stages chain: a converted T2I checkpoint or the T2I stage -> F (new temporal
layers keep their identity init, the conditioning conv its zero init) -> I.
Params present in both with the same shape are taken from the checkpoint;
a shape mismatch is an error naming the param.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import traverse_util

from emu_jax import model_folder


def load_init_params(path: str) -> dict:
    return model_folder.load_checkpoint(path)[1]


def overlay_params(fresh: Any, loaded: Any, groups: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Fresh params with every loaded leaf copied in (with `groups`: only those top-level groups, e.g.
    ("vae", "text") for a U-Net trained from scratch on a given VAE); returns (params, a one-line report)."""
    unknown = sorted(set(groups) - set(fresh))
    if unknown:
        raise ValueError(f"unknown init_from_groups {unknown}; the model's groups: {sorted(fresh)}")
    new = traverse_util.flatten_dict(dict(fresh))
    old = traverse_util.flatten_dict({k: v for k, v in dict(loaded).items() if not groups or k in groups})
    mismatched = [
        f"{'/'.join(k)}: checkpoint {old[k].shape} vs model {new[k].shape}"
        for k in old
        if k in new and tuple(old[k].shape) != tuple(new[k].shape)
    ]
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
