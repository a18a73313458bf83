"""Frozen text encoders, one call for both: `encode_text(cfg, params, ids, mask) -> (B, L, D)`, the
per-token context the U-Net cross-attends to, whichever encoder it is.

Configs live in `text_config.py` (re-exported here), modules in `clip.py` and `t5.py`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emu_jax.models import compiled_init
from emu_jax.models.clip import CLIPTextTransformer
from emu_jax.models.t5 import T5Encoder
from emu_jax.models.text_config import (  # noqa: F401  (the configs' public home stays emu_jax.models.text)
    ACTIVATIONS,
    KINDS,
    CLIPTextConfig,
    T5Config,
    TextConfig,
    activation,
    check_ids,
    config_from_dict,
    kind_of,
)


def build_module(cfg: TextConfig, dtype=None):
    """Linen module for `cfg`; its apply(params, ids, mask) returns the per-token hidden states first."""
    dt = jnp.dtype(dtype or cfg.dtype)
    return CLIPTextTransformer(cfg, dt) if isinstance(cfg, CLIPTextConfig) else T5Encoder(cfg, dt)


_jitted_init = compiled_init.cached(lambda cfg: build_module(cfg).init)


def init_params(cfg: TextConfig, rng: jax.Array, length: int = 8) -> dict:
    """Random `{"params": ...}` for `cfg` (logical-partitioning boxes removed)."""
    ids = np.zeros((1, length), np.int32)
    return nn.meta.unbox(_jitted_init(cfg)(rng, ids, np.ones((1, length), bool)))


def encode_text(cfg: TextConfig, params, ids_BL: jax.Array, mask_BL: jax.Array | None = None, dtype=None) -> jax.Array:
    """Token ids (B, L) int32 + mask (B, L) bool -> per-token hidden states (B, L, width) float32."""
    check_ids(cfg, ids_BL.shape, None if mask_BL is None else mask_BL.shape)
    if mask_BL is None:
        mask_BL = jnp.ones(ids_BL.shape, bool)
    out = build_module(cfg, dtype).apply(params, ids_BL, mask_BL)
    hidden = out[0] if isinstance(out, tuple) else out
    return hidden.astype(jnp.float32)


def pooled_text(cfg: CLIPTextConfig, params, ids_BL: jax.Array, mask_BL: jax.Array | None = None):
    """CLIP's pooled (EOS) output (B, width), projected when the config has a projection."""
    check_ids(cfg, ids_BL.shape)
    if mask_BL is None:
        mask_BL = jnp.ones(ids_BL.shape, bool)
    return build_module(cfg).apply(params, ids_BL, mask_BL)[1]
