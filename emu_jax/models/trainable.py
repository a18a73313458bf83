"""Which U-Net params train: a rule on param paths, plus the one split / merge of param trees.

Emu Video trains only the new layers (SPEC "frozen spatial, trainable
temporal"): every module named `temporal_*`, the conditioning input conv
`conv_in_cond`, and the optional noise-level embedding `cond_level_embed`.
Text-to-image training ("spatial" mode) trains everything except `temporal_*`.
Gradients and optimiser state then exist only for the trainable split. `split_params` takes a
mode or any path predicate, so the training state splits the whole model bundle with it too.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax

MODES = ("temporal", "spatial", "all")
TEMPORAL_PREFIX = "temporal_"
CONDITIONING_MODULES = ("conv_in_cond", "cond_level_embed")


def is_temporal(path: tuple[str, ...]) -> bool:
    """True for params of a temporal layer (any path component named `temporal_*`)."""
    return any(str(p).startswith(TEMPORAL_PREFIX) for p in path)


def is_trainable(path: tuple[str, ...], mode: str = "temporal") -> bool:
    """Whether the param at `path` (e.g. ('down_blocks_0', 'temporal_attentions_0', ...)) trains in `mode`.

    'temporal' (video F / interpolation I): temporal layers + conditioning input
    conv + cond-level embedding; 'spatial' (text-to-image): everything but the
    temporal layers; 'all': everything.
    """
    if mode not in MODES:
        raise ValueError(f"trainable mode {mode!r} not in {MODES}")
    if mode == "all":
        return True
    if mode == "spatial":
        return not is_temporal(path)
    return is_temporal(path) or any(str(p) in CONDITIONING_MODULES for p in path)


def _unfreeze(params: Mapping[str, Any]) -> dict:
    return flax.core.unfreeze(params) if isinstance(params, flax.core.FrozenDict) else dict(params)


def trainable_mask(params: Mapping[str, Any], mode: str = "temporal") -> dict:
    """Pytree of bools with the structure of `params` (True = trainable), e.g. for `optax.masked`."""
    flat = flax.traverse_util.flatten_dict(_unfreeze(params))
    return flax.traverse_util.unflatten_dict({k: is_trainable(k, mode) for k in flat})


def split_params(
    params: Mapping[str, Any], mode: str | Callable[[tuple[str, ...]], bool] = "temporal"
) -> tuple[dict, dict]:
    """`params -> (trainable, frozen)`, two disjoint nested dicts holding the same leaves.

    `mode`: a mode of `is_trainable`, or any predicate on the path (a tuple of str). Boxed (logically
    partitioned) leaves count as leaves, so an abstract tree describing shardings splits like the params.
    """
    keep = mode if callable(mode) else (lambda path: is_trainable(path, mode))
    flat = flax.traverse_util.flatten_dict(_unfreeze(params))
    trainable = {k: v for k, v in flat.items() if keep(tuple(map(str, k)))}
    frozen = {k: v for k, v in flat.items() if k not in trainable}
    return flax.traverse_util.unflatten_dict(trainable), flax.traverse_util.unflatten_dict(frozen)


def merge_params(trainable: Mapping[str, Any], frozen: Mapping[str, Any]) -> dict:
    """Inverse of `split_params`; raises ValueError if a path is in both halves."""
    a = flax.traverse_util.flatten_dict(_unfreeze(trainable))
    b = flax.traverse_util.flatten_dict(_unfreeze(frozen))
    both = sorted("/".join(k) for k in set(a) & set(b))
    if both:
        raise ValueError(f"params present in both trainable and frozen halves: {both[:5]}")
    return flax.traverse_util.unflatten_dict({**b, **a})


def count_params(params: Mapping[str, Any], mode: str = "temporal") -> dict[str, int]:
    """Parameter counts {'trainable', 'frozen', 'total'} (works on ShapeDtypeStruct leaves too)."""
    flat = flax.traverse_util.flatten_dict(_unfreeze(params))
    n = {"trainable": 0, "frozen": 0}
    for k, v in flat.items():
        size = 1
        for d in v.shape:
            size *= int(d)
        n["trainable" if is_trainable(k, mode) else "frozen"] += size
    n["total"] = n["trainable"] + n["frozen"]
    return n
