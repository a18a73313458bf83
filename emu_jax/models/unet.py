"""The spatio-temporal U-Net `F` of Emu Video (also the interpolation model `I`).

A diffusers-style SD U-Net on `(B, T, H, W, C)` latents whose spatial layers
see `(B*T, H, W, C)` (`x_BTHWC`, `h_FHWC`: F = B*T, docs/unet.md "Shape names"),
with identity-initialised temporal convs / attention
after each spatial conv / attention, an extra zero-initialised conditioning
input conv (`conv_in_cond`: padded image latent + mask), and `image_mode`
that skips all temporal layers (keyframe generation with the same weights).

    model = UNet(config)
    params = init_params(config, jax.random.key(0))
    eps = model.apply({"params": params}, x, t, contexts, cond=cond)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import meta

from emu_jax.models import compiled_init
from emu_jax.models.layers import Conv, GroupNorm, TimestepEmbedding, constrain, timestep_embedding
from emu_jax.models.temporal import TemporalConv
from emu_jax.models.unet_blocks import SPATIAL_NAMES, LevelBlock, _dtype, conv3x3
from emu_jax.models.unet_config import UNetConfig, validate_inputs

__all__ = ["UNet", "UNetConfig", "validate_inputs", "init_params", "abstract_params", "dummy_inputs"]

VIDEO_NAMES = ("activation_batch", "activation_frames", "activation_height", "activation_width", "activation_embed")


class UNet(nn.Module):
    """Spatio-temporal U-Net; see module docstring. Returns `(B, T, H, W, out_channels)` float32."""

    config: UNetConfig

    @nn.compact
    def __call__(
        self,
        x_BTHWC: jax.Array,
        t: jax.Array,
        contexts: Sequence[jax.Array],
        cond: jax.Array | None = None,
        image_mode: bool = False,
        cond_level: jax.Array | None = None,
        deterministic: bool = True,
        context_masks: Sequence[jax.Array | None] | None = None,
    ) -> jax.Array:
        cfg, dtype = self.config, _dtype(self.config)
        contexts = tuple(contexts)
        validate_inputs(
            cfg,
            x_BTHWC.shape,
            jnp.shape(t),
            [c.shape for c in contexts],
            None if cond is None else cond.shape,
            None if context_masks is None else [None if m is None else m.shape for m in context_masks],
            None if cond_level is None else jnp.shape(cond_level),
        )
        del deterministic  # no dropout: SD-family U-Nets train with dropout 0
        b, nt, hh, ww, _ = x_BTHWC.shape
        masks = tuple(context_masks) if context_masks is not None else (None,) * len(contexts)

        # Time (and optional conditioning-noise-level) embedding, one row per frame.
        t = jnp.broadcast_to(jnp.asarray(t), (b,))
        temb = TimestepEmbedding(cfg.time_embed_dim, dtype=dtype, name="time_embedding")(
            timestep_embedding(t, cfg.model_channels, cfg.flip_sin_to_cos, cfg.freq_shift).astype(dtype)
        )
        if cfg.cond_level_embed:
            level = jnp.zeros((b,)) if cond_level is None else jnp.broadcast_to(jnp.asarray(cond_level), (b,))
            temb = temb + TimestepEmbedding(cfg.time_embed_dim, zero_out=True, dtype=dtype, name="cond_level_embed")(
                timestep_embedding(level, cfg.model_channels, cfg.flip_sin_to_cos, cfg.freq_shift).astype(dtype)
            )
        temb = jnp.repeat(temb, nt, axis=0)  # (B*T, E): one row per frame, item-major like h_FHWC

        # Input: frozen conv_in on the noisy latent + zero-initialised conv_in_cond on the conditioning.
        x_BTHWC = constrain(x_BTHWC, VIDEO_NAMES)
        h_FHWC = Conv(cfg.model_channels, (3, 3), dtype=dtype, name="conv_in")(x_BTHWC.reshape(b * nt, hh, ww, -1))
        if cfg.cond_channels and (cond is not None or self.is_initializing()):
            cond_BTHWC = jnp.zeros(x_BTHWC.shape[:4] + (cfg.cond_channels,), dtype) if cond is None else cond
            h_FHWC = h_FHWC + Conv(
                cfg.model_channels,
                (3, 3),
                use_bias=False,
                kernel_init=nn.initializers.zeros,
                dtype=dtype,
                name="conv_in_cond",
            )(cond_BTHWC.reshape(b * nt, hh, ww, -1))
        if cfg.temporal and (not image_mode or self.is_initializing()):
            z_FHWC = TemporalConv(nt, cfg.temporal_kernel, dtype=dtype, name="temporal_conv_in")(h_FHWC)
            h_FHWC = h_FHWC if image_mode else z_FHWC
        h_FHWC = constrain(h_FHWC, SPATIAL_NAMES)  # H, W shrink and grow again through the levels

        args = (temb, contexts, masks)
        skips = [h_FHWC]
        levels = cfg.num_levels
        for i in range(levels):
            h_FHWC, outs = LevelBlock(cfg, "down", i, cfg.level_res_blocks[i], i < levels - 1, name=f"down_blocks_{i}")(
                h_FHWC, *args, None, nt, image_mode
            )
            skips.extend(outs)
        h_FHWC, _ = LevelBlock(cfg, "mid", levels - 1, 2, False, name="mid_block")(h_FHWC, *args, None, nt, image_mode)
        for j in range(levels):
            i = levels - 1 - j
            h_FHWC, _ = LevelBlock(cfg, "up", i, cfg.level_res_blocks[i] + 1, j < levels - 1, name=f"up_blocks_{j}")(
                h_FHWC, *args, skips, nt, image_mode
            )

        h_FHWC = nn.silu(GroupNorm(cfg.norm_groups, cfg.norm_eps, dtype=dtype, name="conv_norm_out")(h_FHWC))
        h_FHWC = conv3x3(self, cfg, h_FHWC, cfg.out_channels, "conv_out", nt, image_mode)
        return constrain(h_FHWC.astype(jnp.float32).reshape(b, nt, hh, ww, cfg.out_channels), VIDEO_NAMES)


def dummy_inputs(config: UNetConfig, batch: int = 1, frames: int = 2, size: int | None = None, context_len: int = 4):
    """Zero inputs `(x, t, contexts, cond)` of the right shapes for init / eval_shape."""
    size = size or 2 ** (config.num_levels - 1)
    x = jnp.zeros((batch, frames, size, size, config.in_channels), jnp.float32)
    t = jnp.zeros((batch,), jnp.int32)
    contexts = tuple(jnp.zeros((batch, context_len, d), jnp.float32) for d in config.context_dims)
    cond = jnp.zeros(x.shape[:4] + (config.cond_channels,), jnp.float32) if config.cond_channels else None
    return x, t, contexts, cond


def abstract_params(config: UNetConfig):
    """Boxed abstract params (`nn.Partitioned` of ShapeDtypeStruct) via `jax.eval_shape`; no memory used.

    Feed to `emu_jax.sharding.params_shardings`; `nn.meta.unbox` gives the plain shape tree.
    """
    model = UNet(config)
    return jax.eval_shape(lambda k: model.init(k, *dummy_inputs(config))["params"], jax.random.key(0))


def _init(config: UNetConfig):
    model = UNet(config)
    return lambda k, *a: model.init(k, *a)["params"]


_jitted_init = compiled_init.cached(_init)


def init_params(config: UNetConfig, rng: jax.Array, out_shardings=None, **dummy_kw):
    """Fresh unboxed params (plain nested dict of fp32 arrays), temporal layers at identity.

    `out_shardings` (e.g. `emu_jax.sharding.params_shardings(abstract_params(config), mesh)`)
    creates each param directly in its shards, so a model larger than one device's memory can be
    initialised.
    """
    if out_shardings is None:
        return meta.unbox(_jitted_init(config)(rng, *dummy_inputs(config, **dummy_kw)))
    model = UNet(config)
    init = compiled_init.jit(lambda k, *a: meta.unbox(model.init(k, *a)["params"]), out_shardings=out_shardings)
    return init(rng, *dummy_inputs(config, **dummy_kw))
