"""The KL autoencoder on video: (B, T, ...) clips through the per-frame encoder / decoder in frame chunks.

One compile, memory bounded by B * chunk frames, and a batch sharded over devices stays sharded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emu_jax.models.autoencoder import (
    DiagonalGaussian,
    VAEConfig,
    check_latents,
    check_pixels,
    decode,
    encode,
    scale_latents,
    unscale_latents,
)

Array = jax.Array


def _frames_in_chunks(fn, x_BT: Array, chunk: int) -> Array:
    """Apply the per-frame `fn` to a video (B, T, ...) `chunk` frames of every clip at a time.

    lax.map runs over frame chunks while the batch axis stays leading inside
    each step, so a batch sharded over devices stays sharded (mapping over the
    flattened B*T axis would gather every clip onto every device). One
    compile, memory bounded by B * chunk frames. Names: `x_IBT` is I chunks of `chunk` frames
    (T inside a chunk), F = B*chunk frames folded into the batch; per-frame axes stay unnamed.
    """
    b, t = x_BT.shape[:2]
    chunk = max(1, min(int(chunk), t))
    pad = (-t) % chunk
    x_BT = jnp.pad(x_BT, [(0, 0), (0, pad)] + [(0, 0)] * (x_BT.ndim - 2)) if pad else x_BT
    num_chunks = (t + pad) // chunk
    x_IBT = jnp.swapaxes(x_BT.reshape((b, num_chunks, chunk) + x_BT.shape[2:]), 0, 1)

    def one(chunk_BT: Array) -> Array:  # batch-major, so the batch sharding carries over
        y_F = fn(chunk_BT.reshape((b * chunk,) + chunk_BT.shape[2:]))
        return y_F.reshape((b, chunk) + y_F.shape[1:])

    y_IBT = jax.lax.map(one, x_IBT)
    return jnp.swapaxes(y_IBT, 0, 1).reshape((b, num_chunks * chunk) + y_IBT.shape[3:])[:, :t]


def encode_video(cfg: VAEConfig, params, x_BTHWC: Array, rng: Array | None = None, chunk: int = 8, dtype=None) -> Array:
    """Pixels in [-1, 1] (B, T, H, W, C) -> scaled diffusion latents (B, T, H/f, W/f, z).

    With `rng` the posterior is sampled (per frame, independent noise), else
    its mean is used. Frames go through the encoder `chunk` at a time.
    """
    check_pixels(cfg, x_BTHWC.shape)
    if x_BTHWC.ndim != 5:
        raise ValueError(f"video must be (B, T, H, W, C), got shape {x_BTHWC.shape}")

    def moments(x_FHWC: Array) -> Array:
        # Mean and log-variance travel together so one chunked pass serves both modes.
        post = encode(cfg, params, x_FHWC, dtype)
        return jnp.concatenate([post.mean, post.logvar], axis=-1)

    post = DiagonalGaussian.from_moments(_frames_in_chunks(moments, x_BTHWC, chunk))
    z = post.mean if rng is None else post.sample(rng)
    return scale_latents(cfg, z)


def decode_video(cfg: VAEConfig, params, z_BTHWC: Array, chunk: int = 8, dtype=None) -> Array:
    """Scaled diffusion latents (B, T, h, w, z) -> pixels (B, T, h*f, w*f, C), fp32 output."""
    check_latents(cfg, z_BTHWC.shape)
    if z_BTHWC.ndim != 5:
        raise ValueError(f"video latents must be (B, T, h, w, z), got shape {z_BTHWC.shape}")
    z = unscale_latents(cfg, z_BTHWC)
    return _frames_in_chunks(lambda zc: decode(cfg, params, zc, dtype), z, chunk)
