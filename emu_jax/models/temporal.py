"""Temporal layers of the video U-Net: a 1D conv over frames and an attention block over frames.

Both start as the identity (SPEC "temporal init"): the conv kernel is the
identity at its centre tap and zero elsewhere; the attention block's last
projection is zero, so its residual adds nothing. Hence at init the video
model equals the image model applied frame by frame. Every module here is
named `temporal_*` by its parent, which is how `trainable.py` finds them.

Array names end in their layout (docs/unet.md "Shape names"): F = B*T frames
folded into the batch (the spatial layers' layout), P = H*W pixels of a frame,
G = B*P one frame sequence per pixel, E = N*D the heads' features side by side.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.models import remat
from emu_jax.models.attention import DEFAULT_BLOCK_KV, DEFAULT_BLOCK_Q
from emu_jax.models.layers import (
    Attention,
    Conv,
    Dense,
    Dtype,
    GEGLUFeedForward,
    GroupNorm,
    LayerNorm,
    attention_core,
    constrain,
    timestep_embedding,
)


def identity_temporal_kernel_init(key, shape, dtype=jnp.float32):
    """Conv kernel `(k, s, s, C, C)` that copies its input: eye(C) at the centre tap, zeros elsewhere."""
    del key
    cin, cout = shape[-2], shape[-1]
    if cin != cout:
        raise ValueError(f"identity temporal conv needs in == out channels, got {cin} -> {cout}")
    kernel = jnp.zeros(shape, dtype)
    return kernel.at[tuple(k // 2 for k in shape[:-2])].set(jnp.eye(cin, dtype=dtype))


class TemporalConv(nn.Module):
    """1D conv over frames, `(B*T, H, W, C) -> (B*T, H, W, C)`, identity at init.

    Implemented as a `(k, 1, 1)` 3D conv on `(B, T, H, W, C)` (zero padding
    over frames), which avoids transposing to `(B*H*W, T, C)`; the kernel
    layout `(k, 1, 1, C, C)` matches diffusers' `TemporalConvLayer` Conv3d.
    """

    num_frames: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_FHWC: jax.Array) -> jax.Array:
        f, h, w, c = x_FHWC.shape
        x_BTHWC = x_FHWC.reshape(f // self.num_frames, self.num_frames, h, w, c)
        y_BTHWC = Conv(
            c,
            kernel_size=(self.kernel_size, 1, 1),
            window_names=("kernel_t", "kernel_h", "kernel_w"),
            kernel_init=identity_temporal_kernel_init,
            dtype=self.dtype,
            name="conv",
        )(x_BTHWC)
        return y_BTHWC.reshape(f, h, w, c)


class FrameAttention(nn.Module):
    """Self-attention over frames at every pixel on `(B, T*P, C)` tokens (frame-major), diffusers'
    Attention params (`to_q`, `to_k`, `to_v`, `to_out_0`).

    Projections run on the frame-major tokens as they are; only the per-head q / k / v and the
    output are rearranged to `(B*P, T, N, D)` for the attention core, so the norms, projections and
    feed-forward around it never see a transposed layout.
    """

    num_frames: int
    num_heads: int
    head_dim: int
    implementation: str | None = None
    dtype: Dtype = jnp.float32
    block_q: int = DEFAULT_BLOCK_Q
    block_kv: int = DEFAULT_BLOCK_KV

    @nn.compact
    def __call__(self, x_BLC: jax.Array) -> jax.Array:
        b, tp, c = x_BLC.shape  # L = T*P, frame-major
        t, n, d = self.num_frames, self.num_heads, self.head_dim
        p = tp // t
        inner = n * d

        def per_pixel(name):  # (B, T*P, C) -> (G, T, N, D)
            y_BLE = Dense(inner, ("embed", "heads"), use_bias=False, dtype=self.dtype, name=name)(x_BLC)
            y_BPTND = y_BLE.reshape(b, t, p, n, d).transpose(0, 2, 1, 3, 4)
            return y_BPTND.reshape(b * p, t, n, d)

        q_GTND, k_GTND, v_GTND = per_pixel("to_q"), per_pixel("to_k"), per_pixel("to_v")
        out_GTND = attention_core(q_GTND, k_GTND, v_GTND, None, self.implementation, False, self.block_q, self.block_kv)
        out_BTPE = out_GTND.reshape(b, p, t, inner).transpose(0, 2, 1, 3)
        return Dense(c, ("heads", "embed"), dtype=self.dtype, name="to_out_0")(out_BTPE.reshape(b, tp, inner))


class TemporalBlock(nn.Module):
    """One temporal transformer layer on frame-major tokens `(B, T*P, C)` (P pixels per frame):
    self-attention over the T frames of each pixel, optionally a zero-initialised cross-attention
    to the text context, then GEGLU MLP."""

    num_frames: int
    num_heads: int
    head_dim: int
    attention_impl: str | None = None
    dtype: Dtype = jnp.float32
    cross_attention: bool = False
    attention_blocks: tuple[int, int] = (DEFAULT_BLOCK_Q, DEFAULT_BLOCK_KV)  # (block_q, block_kv)
    layer_remat: str = "none"  # remat policy of each attention / feed-forward (UNetConfig.remat_scope='layer')

    @nn.compact
    def __call__(
        self, x: jax.Array, context: jax.Array | None = None, context_mask: jax.Array | None = None
    ) -> jax.Array:
        bq, bkv = self.attention_blocks
        x = x + remat.remat(FrameAttention, self.layer_remat)(
            self.num_frames,
            self.num_heads,
            self.head_dim,
            implementation=self.attention_impl,
            dtype=self.dtype,
            block_q=bq,
            block_kv=bkv,
            name="attn1",
        )(LayerNorm(dtype=self.dtype, name="norm1")(x))
        x = remat.tag_residual(x)
        if self.cross_attention:
            # Every token of a video (all pixels, all frames) is a query against that video's context row.
            y = remat.remat(Attention, self.layer_remat)(
                self.num_heads,
                self.head_dim,
                zero_out=True,
                implementation=self.attention_impl,
                dtype=self.dtype,
                block_q=bq,
                block_kv=bkv,
                name="attn2",
            )(LayerNorm(dtype=self.dtype, name="norm2")(x), context.astype(self.dtype), context_mask)
            x = remat.tag_residual(x + y)
        ff = remat.remat(GEGLUFeedForward, self.layer_remat)(dtype=self.dtype, name="ff")
        return remat.tag_residual(x + ff(LayerNorm(dtype=self.dtype, name="norm3")(x)))


class TemporalAttention(nn.Module):
    """Attention over frames at every pixel, `(B*T, H, W, C) -> (B*T, H, W, C)`, identity at init.

    GroupNorm over (T, H, W, channel group) as diffusers' TransformerTemporalModel,
    `proj_in`, a sinusoidal frame-index encoding (so attention knows frame
    order), `num_layers` TemporalBlocks (with `cross_attention`, each also
    attends to `context`), then a zero-initialised `proj_out` added to the input.
    Tokens stay frame-major `(B, T*H*W, C)`, a free reshape of the input: only the attention core
    sees frames as the sequence axis (see FrameAttention).
    """

    num_frames: int
    num_heads: int
    num_layers: int = 1
    norm_groups: int = 32
    attention_impl: str | None = None
    dtype: Dtype = jnp.float32
    cross_attention: bool = False
    attention_blocks: tuple[int, int] = (DEFAULT_BLOCK_Q, DEFAULT_BLOCK_KV)  # (block_q, block_kv)
    layer_remat: str = "none"  # passed to each TemporalBlock

    @nn.compact
    def __call__(
        self, x_FHWC: jax.Array, context: jax.Array | None = None, context_mask: jax.Array | None = None
    ) -> jax.Array:
        if self.cross_attention and context is None:
            raise ValueError("temporal cross-attention needs the text context")
        f, h, w, c = x_FHWC.shape
        b, t = f // self.num_frames, self.num_frames
        y_BTHWC = GroupNorm(self.norm_groups, 1e-6, dtype=self.dtype, name="norm")(x_FHWC.reshape(b, t, h, w, c))
        y_BTPC = constrain(
            y_BTHWC.reshape(b, t, h * w, c),
            ("activation_batch", "activation_frames", "activation_length", "activation_embed"),
        )
        y_BTPC = Dense(c, ("embed", "heads"), dtype=self.dtype, name="proj_in")(y_BTPC)
        pos_TC = timestep_embedding(jnp.arange(t), c, flip_sin_to_cos=True).astype(self.dtype)
        y_BLC = (y_BTPC + pos_TC[None, :, None]).reshape(b, t * h * w, c)  # L = T*P, frame-major
        for i in range(self.num_layers):
            y_BLC = TemporalBlock(
                t,
                self.num_heads,
                c // self.num_heads,
                self.attention_impl,
                self.dtype,
                self.cross_attention,
                self.attention_blocks,
                self.layer_remat,
                name=f"transformer_blocks_{i}",
            )(y_BLC, context, context_mask)
        y_BLC = Dense(c, ("heads", "embed"), zero_init=True, dtype=self.dtype, name="proj_out")(y_BLC)
        return x_FHWC + y_BLC.reshape(f, h, w, c).astype(x_FHWC.dtype)
