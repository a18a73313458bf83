"""Shared building blocks with logical partitioning: conv, dense, norms, attention, embeddings.

Used by the U-Net, the autoencoder and the text encoders. Every parameter
carries logical axis names (see `emu_jax.sharding` for the mapping to mesh
axes); params are float32, computation runs in `dtype` (float32 or bfloat16).
Module and parameter names follow the PyTorch layouts they are converted from
(`kernel` for weights, `scale`/`bias` for norms) so converters stay mechanical.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.models import attention as attn_lib
from emu_jax.models.attention import ATTENTION_IMPLS  # noqa: F401  (re-exported for older imports)

Dtype = Any
Init = Callable[..., jax.Array]


# PyTorch's default init for conv / linear weights (kaiming uniform with a=sqrt(5)).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def partitioned(init: Init, names: Sequence[str | None]) -> Init:
    """Wrap an initializer so the created param carries logical axis `names`."""
    return nn.with_logical_partitioning(init, tuple(names))


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Logical sharding constraint on an activation; a no-op outside a mesh/rules context."""
    from emu_jax import sharding  # local: sharding is the one owner of name -> mesh resolution

    return sharding.constrain(x, names)


class Dense(nn.Module):
    """Linear layer `(..., in) -> (..., features)` with logical names `(in_name, out_name)`."""

    features: int
    names: tuple[str | None, str | None] = ("embed", "mlp")
    use_bias: bool = True
    zero_init: bool = False  # True for projections that must start at zero (identity residual)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # Params live directly on this module (path .../<name>/kernel), mirroring torch keys.
        kinit = nn.initializers.zeros if self.zero_init else torch_default_init
        kernel = self.param("kernel", partitioned(kinit, self.names), (x.shape[-1], self.features), jnp.float32)
        y = jnp.dot(cpu_rows(x).astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            bias = self.param(
                "bias", partitioned(nn.initializers.zeros, (self.names[1],)), (self.features,), jnp.float32
            )
            y = y + bias.astype(self.dtype)
        return y.reshape(x.shape[:-1] + (self.features,))


def cpu_rows(x: jax.Array) -> jax.Array:
    """`x` as a `(rows, C)` matrix when compiling for the CPU, else unchanged.

    XLA:CPU takes a slow path for the gradients of a dot or reduction over several leading axes
    (even a size-1 batch axis): a (1, 8192, 64) x (64, 512) dense's forward + backward took 90 ms
    against 16 ms on the flattened rows, a LayerNorm's 15.9 against 2.9 ms (docs/unet.md "CPU
    performance"). TPU / GPU programs keep their layout, so their AOT reports stay as measured.
    """
    return x.reshape(-1, x.shape[-1]) if attn_lib.platform() == "cpu" else x


class Conv(nn.Module):
    """N-d convolution over channels-last input; kernel `(*window, in, out)`.

    `window_names` name the window dims (e.g. ('kernel_h', 'kernel_w') or
    ('kernel_t', 'kernel_h', 'kernel_w')). Padding is explicit and symmetric
    (`padding` per window dim) to match PyTorch's `padding=k//2` exactly, also
    for strided convs.
    """

    features: int
    kernel_size: tuple[int, ...] = (3, 3)
    strides: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None  # default: k // 2 on both sides
    window_names: tuple[str, ...] = ("kernel_h", "kernel_w")
    use_bias: bool = True
    kernel_init: Init | None = None  # default: PyTorch's init
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        nd = len(self.kernel_size)
        pads = self.padding if self.padding is not None else tuple(k // 2 for k in self.kernel_size)
        kinit = self.kernel_init or torch_default_init
        kernel = self.param(
            "kernel",
            partitioned(kinit, self.window_names + ("conv_in", "embed")),
            tuple(self.kernel_size) + (x.shape[-1], self.features),
            jnp.float32,
        )
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            window_strides=self.strides or (1,) * nd,
            padding=[(p, p) for p in pads],
            dimension_numbers=_conv_dims(nd),
        )
        if self.use_bias:
            bias = self.param("bias", partitioned(nn.initializers.zeros, ("embed",)), (self.features,), jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def _conv_dims(nd: int) -> tuple[str, str, str]:
    spatial = "DHW"[-nd:] if nd <= 3 else None
    if spatial is None:
        raise ValueError(f"conv with {nd} window dims is not supported (1..3)")
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


class GroupNorm(nn.Module):
    """GroupNorm over all non-batch axes of a channels-last tensor `(B, ..., C)`, statistics in float32.

    Matches torch.nn.GroupNorm (biased two-pass variance); params `scale`, `bias`
    sit directly on this module. Output is cast to `dtype`.
    """

    num_groups: int = 32
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        if c % self.num_groups:
            raise ValueError(f"GroupNorm: {c} channels are not divisible by num_groups={self.num_groups}")
        b, cg = x.shape[0], c // self.num_groups
        # Rows (B, P, C) with channels contiguous, and (P, C) for one item: XLA:CPU reduces a
        # group's strided (..., groups, C / groups) layout, or over a size-1 batch axis, several
        # times slower (fwd + bwd of 8 x 32 x 32 x 64: 16.2 -> 8.3 ms; docs/unet.md).
        rows = x.astype(jnp.float32).reshape((b, -1, c) if b > 1 else (-1, c))
        n = rows.shape[-2] * cg

        def group_mean(t):  # per-channel sums over P, summed per group, back on each channel: (..., 1, C)
            sums = t.sum(axis=-2)
            g = sums.reshape(sums.shape[:-1] + (self.num_groups, cg)).sum(-1) / n
            return jnp.repeat(g, cg, axis=-1)[..., None, :]

        d = rows - group_mean(rows)
        y = d * jax.lax.rsqrt(group_mean(jnp.square(d)) + self.epsilon)
        return _affine(self, y, c).astype(self.dtype).reshape(x.shape)


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, statistics in float32 (torch.nn.LayerNorm semantics)."""

    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        xf = cpu_rows(x).astype(jnp.float32)
        mean = xf.mean(axis=-1, keepdims=True)
        var = jnp.square(xf - mean).mean(axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon)
        return _affine(self, y, x.shape[-1]).astype(self.dtype).reshape(x.shape)


def _affine(m: nn.Module, y: jax.Array, c: int) -> jax.Array:
    """Per-channel `scale` (init 1) and `bias` (init 0) of a norm layer, applied in float32."""
    scale = m.param("scale", partitioned(nn.initializers.ones, ("norm",)), (c,), jnp.float32)
    bias = m.param("bias", partitioned(nn.initializers.zeros, ("norm",)), (c,), jnp.float32)
    return (cpu_rows(y) * scale + bias).reshape(y.shape)


def attention_core(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None = None,
    implementation: str | None = None,
    upcast: bool = False,
    block_q: int = attn_lib.DEFAULT_BLOCK_Q,
    block_kv: int = attn_lib.DEFAULT_BLOCK_KV,
) -> jax.Array:
    """Scaled dot-product attention `(B, L, N, D), (B, K, N, D) -> (B, L, N, D)`.

    `implementation` is one of `attention.ATTENTION_IMPLS` (see emu_jax.models.attention;
    None = jax's XLA path); every one computes logits and softmax in float32.
    `mask` is `(B, K)` bool, True = attend (padded text tokens False).
    `upcast=True` runs q/k in float32 (diffusers' `upcast_attention`).
    """
    out_dtype = v.dtype
    if upcast:
        q, k, v = q.astype(jnp.float32), k.astype(jnp.float32), v.astype(jnp.float32)
    out = attn_lib.dot_product_attention(q, k, v, mask, implementation, block_q=block_q, block_kv=block_kv)
    return out.astype(out_dtype)


class Attention(nn.Module):
    """Multi-head attention with diffusers' layout: `to_q`, `to_k`, `to_v` (no bias), `to_out_0`.

    x: `(B, L, C)`; context: `(B, K, C_ctx)` or None for self-attention;
    context_mask: `(B, K)` bool or None. Returns `(B, L, out_features or C)`.
    `zero_out=True` zero-initialises the output projection (identity residual).
    """

    num_heads: int
    head_dim: int
    out_features: int | None = None
    zero_out: bool = False
    implementation: str | None = None
    upcast: bool = False
    dtype: Dtype = jnp.float32
    block_q: int = attn_lib.DEFAULT_BLOCK_Q  # splash / blocked tile sizes
    block_kv: int = attn_lib.DEFAULT_BLOCK_KV

    @nn.compact
    def __call__(
        self, x: jax.Array, context: jax.Array | None = None, context_mask: jax.Array | None = None
    ) -> jax.Array:
        inner = self.num_heads * self.head_dim
        kv_in, kv_name = (x, "embed") if context is None else (context, "context")
        q = Dense(inner, ("embed", "heads"), use_bias=False, dtype=self.dtype, name="to_q")(x)
        k = Dense(inner, (kv_name, "heads"), use_bias=False, dtype=self.dtype, name="to_k")(kv_in)
        v = Dense(inner, (kv_name, "heads"), use_bias=False, dtype=self.dtype, name="to_v")(kv_in)
        split = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, self.head_dim))  # (B, L, N*D) -> (B, L, N, D)
        q_BLND, k_BKND, v_BKND = split(q), split(k), split(v)
        q_BLND = constrain(q_BLND, ("activation_batch", "activation_length", "activation_heads", None))
        out_BLND = attention_core(
            q_BLND, k_BKND, v_BKND, context_mask, self.implementation, self.upcast, self.block_q, self.block_kv
        )
        out = out_BLND.reshape(out_BLND.shape[:-2] + (inner,))  # heads side by side again: (B, L, N*D)
        return Dense(
            self.out_features or x.shape[-1],
            ("heads", "embed"),
            zero_init=self.zero_out,
            dtype=self.dtype,
            name="to_out_0",
        )(out)


class GEGLUFeedForward(nn.Module):
    """diffusers FeedForward with GEGLU: `net_0/proj` (C -> 2*inner), exact gelu gate, `net_2` (inner -> C)."""

    mult: int = 4
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        inner = c * self.mult
        h = GEGLUProj(inner, dtype=self.dtype, name="net_0")(x)
        h = constrain(h, ("activation_batch", "activation_length", "activation_mlp"))
        return Dense(c, ("mlp", "embed"), dtype=self.dtype, name="net_2")(h)


class GEGLUProj(nn.Module):
    """`proj`: C -> 2*inner, split into (hidden, gate); returns hidden * gelu(gate) (exact erf gelu)."""

    inner: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = Dense(2 * self.inner, ("embed", "mlp"), dtype=self.dtype, name="proj")(x)
        hidden, gate = jnp.split(h, 2, axis=-1)
        return hidden * gelu_erf(gate)


def gelu_erf(x: jax.Array) -> jax.Array:
    """Exact GELU as torch writes it, `x / 2 * (1 + erf(x / sqrt(2)))`.

    Same values as `jax.nn.gelu(approximate=False)` (which goes through erfc) to float32 rounding,
    but XLA lowers erf to one rational polynomial and erfc to an exp-based one: on this CPU the
    GEGLU of 8192 x 512 ran 5.6x faster forward, 2.2x forward + backward.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(1.0 / math.sqrt(2.0), x.dtype)))


def timestep_embedding(
    t: jax.Array, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0, max_period: float = 10000.0
) -> jax.Array:
    """Sinusoidal embedding `(B,) -> (B, dim)` float32, equal to diffusers `get_timestep_embedding`."""
    half = dim // 2
    exponent = -math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift)
    args = jnp.asarray(t, jnp.float32)[:, None] * jnp.exp(exponent)[None, :]
    sin, cos = jnp.sin(args), jnp.cos(args)
    emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class TimestepEmbedding(nn.Module):
    """diffusers TimestepEmbedding: `linear_1` -> SiLU -> `linear_2`; `zero_out` zero-inits linear_2."""

    features: int
    zero_out: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, emb: jax.Array) -> jax.Array:
        h = Dense(self.features, ("embed", "mlp"), dtype=self.dtype, name="linear_1")(emb)
        return Dense(self.features, ("mlp", "embed"), zero_init=self.zero_out, dtype=self.dtype, name="linear_2")(
            nn.silu(h)
        )
