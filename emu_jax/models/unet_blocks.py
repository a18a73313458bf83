"""U-Net blocks (diffusers SD 1.x / 2.x structure) with optional temporal layers.

Spatial tensors are `(B*T, H, W, C)`, named `x_FHWC` (F = B*T frames folded into the batch,
P = H*W pixels of a frame: docs/unet.md "Shape names"). Module and param names mirror
diffusers' `UNet2DConditionModel` keys (`resnets_0/conv1/kernel` for
`resnets.0.conv1.weight`) so conversion is a mechanical rename; the temporal
modules sit beside them, named `temporal_*`. In `image_mode` temporal layers
are skipped (during `init` they still run once so the param tree is complete).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.models import remat
from emu_jax.models.layers import Attention, Conv, Dense, Dtype, GEGLUFeedForward, GroupNorm, LayerNorm, constrain
from emu_jax.models.temporal import TemporalAttention, TemporalConv
from emu_jax.models.unet_config import UNetConfig

SPATIAL_NAMES = ("activation_batch", "activation_height", "activation_width", "activation_embed")


def _dtype(cfg: UNetConfig) -> Dtype:
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32


def _use_temporal(module: nn.Module, cfg: UNetConfig, image_mode: bool) -> bool:
    """Run temporal layers in video mode, and during init so their params exist in both modes."""
    return cfg.temporal and (not image_mode or module.is_initializing())


def _remat(cls, cfg: UNetConfig, static_argnums: tuple[int, ...], scope: str = "block"):
    """`cls` wrapped in `nn.remat` with `cfg.remat`'s policy if `scope` is `cfg.remat_scope`
    (see emu_jax.models.remat); blocks of the other scope run unwrapped."""
    if scope != cfg.remat_scope:
        return cls
    return remat.remat(cls, cfg.remat, static_argnums)


def _layer_remat(cfg: UNetConfig) -> str:
    """The policy for each attention / feed-forward layer ('none' unless remat_scope='layer')."""
    return cfg.remat if cfg.remat_scope == "layer" else "none"


def conv3x3(
    parent: nn.Module,
    cfg: UNetConfig,
    x: jax.Array,
    features: int,
    name: str,
    num_frames: int,
    image_mode: bool,
    strides: int = 1,
) -> jax.Array:
    """Spatial 3x3 conv `parent/<name>`, then temporal conv `parent/temporal_<name>` (skipped in image mode)."""
    dtype = _dtype(cfg)
    y = Conv(features, (3, 3), strides=(strides, strides), dtype=dtype, name=name)(x)
    if _use_temporal(parent, cfg, image_mode):
        z = TemporalConv(num_frames, cfg.temporal_kernel, dtype=dtype, name=f"temporal_{name}")(y)
        y = y if image_mode else z
    return y


class ResBlock(nn.Module):
    """diffusers ResnetBlock2D (`norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut`) + temporal convs."""

    cfg: UNetConfig
    out_channels: int

    @nn.compact
    def __call__(self, x_FHWC: jax.Array, temb: jax.Array, num_frames: int, image_mode: bool) -> jax.Array:
        cfg, dtype = self.cfg, _dtype(self.cfg)
        h_FHWC = nn.silu(GroupNorm(cfg.norm_groups, cfg.norm_eps, dtype=dtype, name="norm1")(x_FHWC))
        h_FHWC = conv3x3(self, cfg, h_FHWC, self.out_channels, "conv1", num_frames, image_mode)
        t_FC = Dense(self.out_channels, ("mlp", "embed"), dtype=dtype, name="time_emb_proj")(nn.silu(temb))
        h_FHWC = remat.tag_residual(h_FHWC + t_FC[:, None, None, :])
        h_FHWC = nn.silu(GroupNorm(cfg.norm_groups, cfg.norm_eps, dtype=dtype, name="norm2")(h_FHWC))
        h_FHWC = conv3x3(self, cfg, h_FHWC, self.out_channels, "conv2", num_frames, image_mode)
        if x_FHWC.shape[-1] != self.out_channels:
            x_FHWC = Conv(self.out_channels, (1, 1), dtype=dtype, name="conv_shortcut")(x_FHWC)
        return constrain(x_FHWC.astype(dtype) + h_FHWC, SPATIAL_NAMES)


class BasicTransformerBlock(nn.Module):
    """diffusers BasicTransformerBlock: self-attn, cross-attn to one text context, GEGLU MLP (pre-LN)."""

    cfg: UNetConfig
    num_heads: int
    head_dim: int

    @nn.compact
    def __call__(self, x_FPC: jax.Array, context: jax.Array, context_mask: jax.Array | None) -> jax.Array:
        cfg, dtype = self.cfg, _dtype(self.cfg)
        attn = dict(
            implementation=cfg.attention_impl,
            upcast=cfg.upcast_attention,
            dtype=dtype,
            block_q=cfg.attention_block_q,
            block_kv=cfg.attention_block_kv,
        )
        attn_cls = remat.remat(Attention, _layer_remat(cfg))
        ff_cls = remat.remat(GEGLUFeedForward, _layer_remat(cfg))
        attn1 = attn_cls(self.num_heads, self.head_dim, name="attn1", **attn)
        x_FPC = remat.tag_residual(x_FPC + attn1(LayerNorm(dtype=dtype, name="norm1")(x_FPC)))
        # Cross-attention is per query token, so all T frames of a sample share one context row:
        # fold frames into the query length (L = T*P) instead of repeating the context T times.
        f, p, c = x_FPC.shape
        b = context.shape[0]
        q_in_BLC = LayerNorm(dtype=dtype, name="norm2")(x_FPC).reshape(b, (f // b) * p, c)
        y_BLC = attn_cls(self.num_heads, self.head_dim, name="attn2", **attn)(
            q_in_BLC, context.astype(dtype), context_mask
        )
        x_FPC = remat.tag_residual(x_FPC + y_BLC.reshape(f, p, c))
        return remat.tag_residual(x_FPC + ff_cls(dtype=dtype, name="ff")(LayerNorm(dtype=dtype, name="norm3")(x_FPC)))


class SpatialTransformer(nn.Module):
    """diffusers Transformer2DModel: GroupNorm, `proj_in`, transformer layers, `proj_out`, residual.

    Layer i cross-attends to `contexts[i]` when there are several contexts,
    else every layer uses `contexts[0]`. `proj_in`/`proj_out` are per-pixel
    linear maps (a 1x1 conv checkpoint is converted to the same params).
    """

    cfg: UNetConfig
    num_heads: int
    num_layers: int

    @nn.compact
    def __call__(self, x_FHWC: jax.Array, contexts: Sequence[jax.Array], context_masks: Sequence) -> jax.Array:
        cfg, dtype = self.cfg, _dtype(self.cfg)
        f, h, w, c = x_FHWC.shape
        y_FPC = GroupNorm(cfg.norm_groups, 1e-6, dtype=dtype, name="norm")(x_FHWC).reshape(f, h * w, c)
        y_FPC = Dense(c, ("embed", "heads"), dtype=dtype, name="proj_in")(y_FPC)
        for i in range(self.num_layers):
            j = i if len(contexts) > 1 else 0
            y_FPC = BasicTransformerBlock(cfg, self.num_heads, c // self.num_heads, name=f"transformer_blocks_{i}")(
                y_FPC, contexts[j], context_masks[j]
            )
        y_FPC = Dense(c, ("heads", "embed"), dtype=dtype, name="proj_out")(y_FPC)
        return constrain(x_FHWC.astype(dtype) + y_FPC.reshape(f, h, w, c), SPATIAL_NAMES)


class LevelBlock(nn.Module):
    """One U-Net level: diffusers Down/CrossAttnDown, UNetMidBlock2DCrossAttn or Up/CrossAttnUp block.

    kind 'down': resnets (+ attention) per layer, skip outputs collected, then
    `downsamplers_0` unless last level. kind 'up': each resnet first
    concatenates the next skip (popped from the end), then `upsamplers_0`
    (nearest x2 + conv) unless last. kind 'mid': resnet, attention, resnet.
    Each spatial attention is followed (video mode) by `temporal_attentions_i`.
    """

    cfg: UNetConfig
    kind: str
    level: int
    num_layers: int
    resample: bool

    @nn.compact
    def __call__(self, h, temb, contexts, context_masks, skips, num_frames: int, image_mode: bool):
        cfg = self.cfg
        out_c = cfg.level_channels[self.level]
        heads = cfg.level_heads[self.level]
        has_attn = self.kind == "mid" or cfg.level_has_attention(self.level)
        # A resnet is one layer: rematerialised whole in either scope.
        res_cls = remat.remat(ResBlock, cfg.remat, static_argnums=(3, 4))
        attn_cls = _remat(SpatialTransformer, cfg, static_argnums=())
        tattn_cls = _remat(TemporalAttention, cfg, static_argnums=())
        outputs = []
        n_res = 2 if self.kind == "mid" else self.num_layers
        n_attn = 1 if self.kind == "mid" else (self.num_layers if has_attn else 0)
        for i in range(n_res):
            if self.kind == "up":
                h = jnp.concatenate([h, skips.pop().astype(h.dtype)], axis=-1)
            h = res_cls(cfg, out_c, name=f"resnets_{i}")(h, temb, num_frames, image_mode)
            if i < n_attn:
                h = attn_cls(cfg, heads, cfg.level_transformer_layers[self.level], name=f"attentions_{i}")(
                    h, contexts, context_masks
                )
                if _use_temporal(self, cfg, image_mode):
                    tattn = tattn_cls(
                        num_frames,
                        heads,
                        cfg.temporal_layers,
                        cfg.norm_groups,
                        cfg.attention_impl,
                        _dtype(cfg),
                        cfg.temporal_cross_attention,
                        (cfg.attention_block_q, cfg.attention_block_kv),
                        layer_remat=_layer_remat(cfg),
                        name=f"temporal_attentions_{i}",
                    )
                    z = tattn(h, contexts[0], context_masks[0]) if cfg.temporal_cross_attention else tattn(h)
                    h = h if image_mode else z
            outputs.append(h)
        if self.resample:
            if self.kind == "down":
                h = Resample(cfg, out_c, down=True, name="downsamplers_0")(h, num_frames, image_mode)
                outputs.append(h)
            else:
                h = Resample(cfg, out_c, down=False, name="upsamplers_0")(h, num_frames, image_mode)
        return h, outputs


class Resample(nn.Module):
    """diffusers Downsample2D (3x3 conv, stride 2, padding 1) or Upsample2D (nearest x2 then 3x3 conv)."""

    cfg: UNetConfig
    out_channels: int
    down: bool

    @nn.compact
    def __call__(self, h_FHWC, num_frames: int, image_mode: bool):
        if not self.down:
            h_FHWC = jnp.repeat(jnp.repeat(h_FHWC, 2, axis=1), 2, axis=2)
        stride = 2 if self.down else 1
        h_FHWC = conv3x3(self, self.cfg, h_FHWC, self.out_channels, "conv", num_frames, image_mode, strides=stride)
        return constrain(h_FHWC, SPATIAL_NAMES)
