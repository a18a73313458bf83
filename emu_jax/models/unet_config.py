"""UNetConfig: the frozen description of a spatio-temporal U-Net, plus input validation.

Field semantics follow diffusers' `UNet2DConditionModel` (SD 1.x / 2.x block
structure) so that public text-to-image checkpoints convert one to one; the
temporal / conditioning fields are ours (SPEC "Model F").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from emu_jax.models.attention import ATTENTION_IMPLS, check_block_sizes
from emu_jax.models.remat import POLICIES as REMAT_POLICIES
from emu_jax.models.remat import SCOPES as REMAT_SCOPES

DTYPES = ("float32", "bfloat16")


def _per_level(value: int | Sequence[int], levels: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * levels
    value = tuple(int(v) for v in value)
    if len(value) != levels:
        raise ValueError(f"{name}={value} must be an int or have one entry per level ({levels})")
    return value


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Spatio-temporal latent-diffusion U-Net.

    Levels: `len(channel_mult)`; level i has `model_channels * channel_mult[i]`
    channels and spatial downsample factor 2**i. `attention_resolutions` lists
    the factors whose blocks have spatial transformers (CrossAttn*Block2D); the
    mid block always has one. Heads: `head_dim` (heads = channels // head_dim)
    or `num_heads` (int or per level; diffusers' `attention_head_dim` is this
    number of heads for UNet2DConditionModel). `context_dims`: one entry per
    text encoder; with one entry every transformer layer cross-attends to it,
    with several, transformer layer i attends to context i.
    """

    in_channels: int = 4
    cond_channels: int = 0  # 0 = no conditioning input conv
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int | tuple[int, ...] = 2
    attention_resolutions: tuple[int, ...] = (1, 2, 4)
    num_heads: int | tuple[int, ...] | None = 8
    head_dim: int | None = None
    transformer_layers: int | tuple[int, ...] = 1
    context_dims: tuple[int, ...] = (768,)
    use_linear_projection: bool = False  # checkpoint layout only; both are a per-pixel linear map
    norm_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: float = 0.0
    temporal: bool = True
    temporal_kernel: int = 3
    temporal_layers: int = 1  # transformer layers inside each temporal attention block
    # Ours, off by default (SPEC's temporal layers see text only through the frozen spatial features):
    # each temporal layer also cross-attends to text context 0, zero-initialised, so motion words reach
    # the trainable temporal layers directly.
    temporal_cross_attention: bool = False
    cond_level_embed: bool = False
    dtype: str = "float32"
    # Attention per backend (emu_jax/models/attention.py): "auto" picks splash on TPU for long sequences,
    # cudnn on GPU for bf16, by measurement on the CPU; None (saved configs) is jax's XLA path.
    attention_impl: str | None = "auto"
    attention_block_q: int = 512  # splash / blocked query tile (multiple of 128)
    attention_block_kv: int = 512  # splash / blocked key tile (multiple of 128)
    remat: str = "none"  # emu_jax.models.remat: none | full | save_dots | save_dots_no_batch | offload
    remat_scope: str = "block"  # 'block': each resnet / transformer block; 'layer': each attention and MLP
    upcast_attention: bool = False

    def __post_init__(self):
        levels = len(self.channel_mult)
        if levels < 1:
            raise ValueError("channel_mult must have at least one level")
        for name in ("channel_mult", "attention_resolutions", "context_dims"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in ("num_res_blocks", "transformer_layers", "num_heads"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple)):
                object.__setattr__(self, name, tuple(int(x) for x in v))
        _per_level(self.num_res_blocks, levels, "num_res_blocks")
        layers = _per_level(self.transformer_layers, levels, "transformer_layers")
        allowed = {2**i for i in range(levels)}
        bad = [r for r in self.attention_resolutions if r not in allowed]
        if bad:
            raise ValueError(f"attention_resolutions {bad} are not level downsample factors {sorted(allowed)}")
        if (self.num_heads is None) == (self.head_dim is None):
            raise ValueError(f"set exactly one of num_heads ({self.num_heads}) and head_dim ({self.head_dim})")
        if self.num_heads is not None:
            _per_level(self.num_heads, levels, "num_heads")
        if not self.context_dims:
            raise ValueError("context_dims needs at least one text-encoder width")
        attn_layers = [n for i, n in enumerate(layers) if 2**i in self.attention_resolutions or i == levels - 1]
        if len(self.context_dims) > 1 and any(n != len(self.context_dims) for n in attn_layers):
            raise ValueError(
                f"with {len(self.context_dims)} contexts, transformer_layers must be "
                f"{len(self.context_dims)} everywhere (layer i attends context i), got {layers}"
            )
        for name, value, allowed_values in (
            ("dtype", self.dtype, DTYPES),
            ("remat", self.remat, REMAT_POLICIES),
            ("remat_scope", self.remat_scope, REMAT_SCOPES),
            ("attention_impl", self.attention_impl, ATTENTION_IMPLS),
        ):
            if value not in allowed_values:
                raise ValueError(f"{name}={value!r} not in {allowed_values}")
        check_block_sizes(self.attention_block_q, self.attention_block_kv)
        if self.attention_impl == "cudnn" and self.dtype != "bfloat16":
            raise ValueError("attention_impl='cudnn' needs dtype='bfloat16' (cuDNN fused attention takes fp16/bf16)")
        for c in self.level_channels:
            if c % self.norm_groups:
                raise ValueError(f"level width {c} not divisible by norm_groups={self.norm_groups}")
        if self.temporal_kernel % 2 != 1:
            raise ValueError(f"temporal_kernel={self.temporal_kernel} must be odd (same-length padding)")

    # ---- derived per-level values -------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def level_res_blocks(self) -> tuple[int, ...]:
        return _per_level(self.num_res_blocks, self.num_levels, "num_res_blocks")

    @property
    def level_transformer_layers(self) -> tuple[int, ...]:
        return _per_level(self.transformer_layers, self.num_levels, "transformer_layers")

    @property
    def level_heads(self) -> tuple[int, ...]:
        if self.head_dim is not None:
            return tuple(max(1, c // self.head_dim) for c in self.level_channels)
        return _per_level(self.num_heads, self.num_levels, "num_heads")

    def level_has_attention(self, level: int) -> bool:
        return 2**level in self.attention_resolutions

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    # ---- (de)serialisation -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "UNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown UNetConfig fields {unknown}; allowed: {sorted(names)}")
        return cls(**dict(d))

    def replace(self, **kw) -> "UNetConfig":
        return dataclasses.replace(self, **kw)


def validate_inputs(
    config: UNetConfig,
    x_shape,
    t_shape,
    context_shapes,
    cond_shape=None,
    context_mask_shapes=None,
    cond_level_shape=None,
) -> None:
    """Raise ValueError naming the problem if the U-Net inputs do not fit `config`.

    Shapes: x `(B, T, H, W, in_channels)`, t `(B,)` or `()`, contexts one
    `(B, L_i, context_dims[i])` per text encoder, cond `(B, T, H, W,
    cond_channels)` or None. Runs on static shapes, i.e. before compiling.
    """
    x_shape = tuple(x_shape)
    if len(x_shape) != 5:
        raise ValueError(f"x must be (B, T, H, W, C), got shape {x_shape}")
    b, t, h, w, c = x_shape
    if c != config.in_channels:
        raise ValueError(f"x has {c} channels, the U-Net expects in_channels={config.in_channels}")
    factor = 2 ** (config.num_levels - 1)
    if h % factor or w % factor:
        raise ValueError(f"spatial size {h}x{w} must be divisible by 2**(num_levels-1) = {factor}")
    if tuple(t_shape) not in ((b,), ()):
        raise ValueError(f"timesteps t must have shape ({b},) or (), got {tuple(t_shape)}")
    context_shapes = [tuple(s) for s in context_shapes]
    if len(context_shapes) != len(config.context_dims):
        raise ValueError(
            f"got {len(context_shapes)} text contexts, config has context_dims="
            f"{config.context_dims} (one context per text encoder)"
        )
    for i, (s, d) in enumerate(zip(context_shapes, config.context_dims)):
        if len(s) != 3 or s[0] != b or s[2] != d:
            raise ValueError(f"context {i} has shape {s}, expected ({b}, L, {d})")
    if context_mask_shapes is not None:
        if len(context_mask_shapes) != len(context_shapes):
            raise ValueError(f"got {len(context_mask_shapes)} context masks for {len(context_shapes)} contexts")
        for i, (m, s) in enumerate(zip(context_mask_shapes, context_shapes)):
            if m is not None and tuple(m) != s[:2]:
                raise ValueError(f"context mask {i} has shape {tuple(m)}, expected {s[:2]}")
    if cond_shape is not None:
        cond_shape = tuple(cond_shape)
        if config.cond_channels == 0:
            raise ValueError("cond was given but the config has cond_channels=0 (no conditioning input)")
        if len(cond_shape) != 5 or cond_shape[:4] != (b, t, h, w):
            raise ValueError(
                f"cond has shape {cond_shape}, expected {(b, t, h, w, config.cond_channels)} (same B, T, H, W as x)"
            )
        if cond_shape[4] != config.cond_channels:
            raise ValueError(f"cond has {cond_shape[4]} channels, config has cond_channels={config.cond_channels}")
    if cond_level_shape is not None:
        if not config.cond_level_embed:
            raise ValueError("cond_level was given but the config has cond_level_embed=False")
        if tuple(cond_level_shape) not in ((b,), ()):
            raise ValueError(f"cond_level must have shape ({b},) or (), got {tuple(cond_level_shape)}")
