"""KL autoencoder (LDM / Stable Diffusion family) mapping frames to latents and back.

The architecture mirrors diffusers `AutoencoderKL` (Encoder with
DownEncoderBlock2D, Decoder with UpDecoderBlock2D, mid block with one
single-head attention, quant_conv / post_quant_conv) so converted weights give
the same numbers. Parameter names follow diffusers' module paths with '.N'
folded into '_N' (`encoder/down_blocks_0/resnets_1/conv1`), which keeps the
converter a generic renaming. Video runs frame by frame in chunks
(emu_jax.models.vae_video: `encode_video` / `decode_video`), one compile, bounded memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from emu_jax.models import compiled_init, layers

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Shapes and latent scaling of a KL autoencoder; `latent = (z - shift) * scale`."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    norm_eps: float = 1e-6
    mid_block_add_attention: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    scaling_factor: float = 0.18215
    shift_factor: float = 0.0
    dtype: str = "float32"  # compute dtype; fp32 keeps decoded videos free of banding

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(
                f"block_out_channels {self.block_out_channels} must be divisible by "
                f"norm_num_groups={self.norm_num_groups}; {bad} are not"
            )
        if self.latent_channels < 1 or not self.block_out_channels:
            raise ValueError(
                f"latent_channels must be >= 1 and block_out_channels non-empty, got "
                f"{self.latent_channels}, {self.block_out_channels}"
            )

    @property
    def downsample_factor(self) -> int:
        """Spatial reduction from pixels to latents (8 for four levels)."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VAEConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown VAEConfig keys {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["block_out_channels"] = list(self.block_out_channels)
        return d

    @classmethod
    def from_diffusers_config(cls, d: Mapping[str, Any]) -> "VAEConfig":
        """Build from a diffusers `AutoencoderKL` config.json dict (unrelated keys ignored)."""
        blocks = set(d.get("down_block_types", ["DownEncoderBlock2D"])) | set(
            d.get("up_block_types", ["UpDecoderBlock2D"])
        )
        if blocks - {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
            raise ValueError(
                f"unsupported VAE block types {sorted(blocks)}; only DownEncoderBlock2D / UpDecoderBlock2D"
            )
        if d.get("act_fn", "silu") != "silu":
            raise ValueError(f"unsupported VAE act_fn {d['act_fn']!r}; only 'silu'")
        return cls(
            in_channels=d.get("in_channels", 3),
            out_channels=d.get("out_channels", 3),
            latent_channels=d.get("latent_channels", 4),
            block_out_channels=tuple(d.get("block_out_channels", (64,))),
            layers_per_block=d.get("layers_per_block", 1),
            norm_num_groups=d.get("norm_num_groups", 32),
            mid_block_add_attention=d.get("mid_block_add_attention", True),
            use_quant_conv=d.get("use_quant_conv", True) is not False,
            use_post_quant_conv=d.get("use_post_quant_conv", True) is not False,
            scaling_factor=float(d.get("scaling_factor", 0.18215)),
            shift_factor=float(d.get("shift_factor") or 0.0),
        )


@dataclasses.dataclass(frozen=True)
class DiagonalGaussian:
    """Posterior q(z|x) with per-element mean and log-variance, shapes (N, h, w, z)."""

    mean: Array
    logvar: Array

    @classmethod
    def from_moments(cls, moments: Array) -> "DiagonalGaussian":
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return cls(mean, jnp.clip(logvar, -30.0, 20.0))  # same clamp as LDM / diffusers

    @property
    def std(self) -> Array:
        return jnp.exp(0.5 * self.logvar)

    def sample(self, rng: Array) -> Array:
        """One key, or one key per example (`(B,)`, so an example's noise does not depend on B)."""
        typed = jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
        if jnp.ndim(rng) == (1 if typed else 2):  # a (B,) typed or (B, 2) raw batch of keys
            noise = jax.vmap(lambda k: jax.random.normal(k, self.mean.shape[1:], self.mean.dtype))(rng)
        else:
            noise = jax.random.normal(rng, self.mean.shape, self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Array:
        return self.mean

    def kl(self) -> Array:
        """KL(q || N(0, I)) summed over all but the batch axis, shape (N,)."""
        axes = tuple(range(1, self.mean.ndim))
        return 0.5 * jnp.sum(self.mean**2 + jnp.exp(self.logvar) - 1.0 - self.logvar, axis=axes)


def _conv(features: int, kernel: int, dtype, name: str, stride: int = 1, pad: int | None = None):
    return layers.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=None if pad is None else (pad, pad),
        dtype=dtype,
        name=name,
    )


def _norm(cfg: VAEConfig, dtype, name: str):
    return layers.GroupNorm(cfg.norm_num_groups, cfg.norm_eps, dtype=dtype, name=name)


class ResnetBlock(nn.Module):
    """diffusers ResnetBlock2D without time embedding: norm-silu-conv twice plus a shortcut."""

    cfg: VAEConfig
    out_channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.silu(_norm(self.cfg, self.dtype, "norm1")(x))
        h = _conv(self.out_channels, 3, self.dtype, "conv1")(h)
        h = nn.silu(_norm(self.cfg, self.dtype, "norm2")(h))
        h = _conv(self.out_channels, 3, self.dtype, "conv2")(h)
        if x.shape[-1] != self.out_channels:
            x = _conv(self.out_channels, 1, self.dtype, "conv_shortcut")(x)
        return x + h


class MidAttention(nn.Module):
    """Single-head spatial self-attention over all h*w positions, residual (diffusers Attention)."""

    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: Array) -> Array:
        b, h, w, c = x_BHWC.shape
        # Tokens are the H*W pixels (L), attended by one head (N = 1) of all C channels (D = C).
        y_BLND = _norm(self.cfg, self.dtype, "group_norm")(x_BHWC).reshape(b, h * w, 1, c)
        q, k, v = (
            layers.Dense(c, ("embed", "heads"), dtype=self.dtype, name=nm)(y_BLND) for nm in ("to_q", "to_k", "to_v")
        )
        # "auto": splash on TPU once h*w reaches 32x32 (the 4096-token score matrix dominates VAE memory).
        y_BHWC = layers.attention_core(q, k, v, implementation="auto").reshape(b, h, w, c)
        return x_BHWC + layers.Dense(c, ("heads", "embed"), dtype=self.dtype, name="to_out_0")(y_BHWC)


class MidBlock(nn.Module):
    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        x = ResnetBlock(self.cfg, c, self.dtype, name="resnets_0")(x)
        if self.cfg.mid_block_add_attention:
            x = MidAttention(self.cfg, self.dtype, name="attentions_0")(x)
        return ResnetBlock(self.cfg, c, self.dtype, name="resnets_1")(x)


class Downsample(nn.Module):
    """Stride-2 3x3 conv after an asymmetric (0, 1) pad, as in LDM / diffusers."""

    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
        return _conv(self.channels, 3, self.dtype, "conv", stride=2, pad=0)(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling then a 3x3 conv."""

    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return _conv(self.channels, 3, self.dtype, "conv")(x)


class DownBlock(nn.Module):
    """diffusers DownEncoderBlock2D: `layers_per_block` res blocks, then an optional downsampler."""

    cfg: VAEConfig
    channels: int
    num_layers: int
    add_sample: bool
    dtype: Any = jnp.float32
    up: bool = False  # True: UpDecoderBlock2D (nearest 2x upsampler instead)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for j in range(self.num_layers):
            x = ResnetBlock(self.cfg, self.channels, self.dtype, name=f"resnets_{j}")(x)
        if self.add_sample and self.up:
            x = Upsample(self.channels, self.dtype, name="upsamplers_0")(x)
        elif self.add_sample:
            x = Downsample(self.channels, self.dtype, name="downsamplers_0")(x)
        return x


class Encoder(nn.Module):
    """Pixels (N, H, W, in) -> posterior moments (N, H/f, W/f, 2*z) before quant_conv."""

    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg, chans = self.cfg, self.cfg.block_out_channels
        x = _conv(chans[0], 3, self.dtype, "conv_in")(x)
        for i, c in enumerate(chans):
            x = DownBlock(cfg, c, cfg.layers_per_block, i < len(chans) - 1, self.dtype, name=f"down_blocks_{i}")(x)
        x = MidBlock(cfg, self.dtype, name="mid_block")(x)
        x = nn.silu(_norm(cfg, self.dtype, "conv_norm_out")(x))
        return _conv(2 * cfg.latent_channels, 3, self.dtype, "conv_out")(x)


class Decoder(nn.Module):
    """Latents z (N, h, w, z) -> pixels (N, h*f, w*f, out)."""

    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: Array) -> Array:
        cfg, chans = self.cfg, tuple(reversed(self.cfg.block_out_channels))
        x = _conv(chans[0], 3, self.dtype, "conv_in")(z)
        x = MidBlock(cfg, self.dtype, name="mid_block")(x)
        for i, c in enumerate(chans):
            x = DownBlock(
                cfg, c, cfg.layers_per_block + 1, i < len(chans) - 1, self.dtype, up=True, name=f"up_blocks_{i}"
            )(x)
        x = nn.silu(_norm(cfg, self.dtype, "conv_norm_out")(x))
        return _conv(cfg.out_channels, 3, self.dtype, "conv_out")(x)


class AutoencoderKL(nn.Module):
    """Frame autoencoder; `encode` gives the posterior, `decode` maps raw z to pixels.

    Scaling to diffusion latents is separate (`scale_latents` / `unscale_latents`)
    so that the module matches diffusers exactly.
    """

    cfg: VAEConfig
    dtype: Any = None  # None: use cfg.dtype

    def setup(self):
        dt = jnp.dtype(self.dtype or self.cfg.dtype)
        z2 = 2 * self.cfg.latent_channels
        self.encoder = Encoder(self.cfg, dt)
        self.decoder = Decoder(self.cfg, dt)
        self.quant_conv = _conv(z2, 1, dt, "quant_conv") if self.cfg.use_quant_conv else None
        self.post_quant_conv = (
            _conv(self.cfg.latent_channels, 1, dt, "post_quant_conv") if self.cfg.use_post_quant_conv else None
        )

    def encode(self, x_BHWC: Array) -> DiagonalGaussian:
        m = self.encoder(x_BHWC)
        if self.quant_conv is not None:
            m = self.quant_conv(m)
        return DiagonalGaussian.from_moments(m.astype(jnp.float32))

    def decode(self, z_BhwC: Array) -> Array:
        if self.post_quant_conv is not None:
            z_BhwC = self.post_quant_conv(z_BhwC)
        return self.decoder(z_BhwC).astype(jnp.float32)

    def __call__(self, x_BHWC: Array) -> Array:
        """Reconstruction through the posterior mean (used for init and tests)."""
        return self.decode(self.encode(x_BHWC).mean)


# ----------------------------------------------------------------------------- functional API


def check_pixels(cfg: VAEConfig, shape: tuple[int, ...]) -> None:
    """Raise ValueError if frames of `shape` (..., H, W, C) cannot go through the encoder."""
    if len(shape) < 3:
        raise ValueError(f"pixels must be (..., H, W, C), got shape {shape}")
    h, w, c = shape[-3:]
    if c != cfg.in_channels:
        raise ValueError(
            f"pixels have {c} channels (shape {shape}); the VAE expects in_channels={cfg.in_channels} (channels-last)"
        )
    f = cfg.downsample_factor
    if h % f or w % f:
        raise ValueError(f"image size {h}x{w} is not divisible by the VAE downsampling factor {f}")


def check_latents(cfg: VAEConfig, shape: tuple[int, ...]) -> None:
    """Raise ValueError if latents of `shape` (..., h, w, z) do not match the VAE."""
    if len(shape) < 3 or shape[-1] != cfg.latent_channels:
        raise ValueError(
            f"latents have shape {shape}; the VAE expects (..., h, w, {cfg.latent_channels}) channels-last"
        )


_jitted_init = compiled_init.cached(lambda cfg: AutoencoderKL(cfg).init)


def init_params(cfg: VAEConfig, rng: Array, image_size: int | None = None) -> dict:
    """Random parameters `{"params": ...}` (logical-partitioning boxes removed)."""
    s = image_size or 2 * cfg.downsample_factor
    variables = _jitted_init(cfg)(rng, np.zeros((1, s, s, cfg.in_channels), np.float32))
    return nn.meta.unbox(_unfreeze(variables))


def _unfreeze(tree):
    return tree.unfreeze() if isinstance(tree, FrozenDict) else tree


def scale_latents(cfg: VAEConfig, z: Array) -> Array:
    """Raw VAE z -> diffusion latents: (z - shift) * scale."""
    return (z - cfg.shift_factor) * cfg.scaling_factor


def unscale_latents(cfg: VAEConfig, latents: Array) -> Array:
    """Diffusion latents -> raw VAE z (inverse of `scale_latents`)."""
    return latents / cfg.scaling_factor + cfg.shift_factor


def encode(cfg: VAEConfig, params, x_BHWC: Array, dtype=None) -> DiagonalGaussian:
    check_pixels(cfg, x_BHWC.shape)
    return AutoencoderKL(cfg, dtype).apply(params, x_BHWC, method=AutoencoderKL.encode)


def decode(cfg: VAEConfig, params, z_BhwC: Array, dtype=None) -> Array:
    check_latents(cfg, z_BhwC.shape)
    return AutoencoderKL(cfg, dtype).apply(params, z_BhwC, method=AutoencoderKL.decode)
