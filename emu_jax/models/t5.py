"""T5 encoder stack (transformers `T5EncoderModel` twin) used as the second text encoder.

RMS layer norms without bias or mean subtraction, unscaled dot-product
attention, a bucketed relative position bias computed in block 0 and shared
by every block, relu or gated-gelu feed-forward. Names mirror transformers
('.N' -> '_N'): `shared`, `encoder/block_0/layer_0/SelfAttention/q`, ...
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.models import layers
from emu_jax.models.clip import embed
from emu_jax.models.text_config import T5Config, activation

Array = jax.Array
_ACT = ("activation_batch", "activation_length", "activation_embed")


class T5LayerNorm(nn.Module):
    """y = x / rms(x) * scale, statistics in float32 (no mean, no bias)."""

    epsilon: float = 1e-6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param("scale", layers.partitioned(nn.initializers.ones, ("norm",)), (x.shape[-1],))
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.epsilon)
        return (y * scale).astype(self.dtype)


def relative_position_bucket(rel: Array, num_buckets: int, max_distance: int) -> Array:
    """Bidirectional T5 bucket of (key - query) offsets: exact near 0, log-spaced up to max_distance."""
    num_buckets //= 2
    bucket = (rel > 0).astype(jnp.int32) * num_buckets
    rel = jnp.abs(rel)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    # Clamp before the log so rel == 0 does not produce -inf (that branch is unused there anyway).
    large = max_exact + (
        jnp.log(jnp.maximum(rel, 1).astype(jnp.float32) / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(is_small, rel, large)


class T5Attention(nn.Module):
    cfg: T5Config
    has_relative_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BLD: Array, bias_BNLL: Array | None, mask_BL: Array) -> tuple[Array, Array]:
        cfg = self.cfg
        inner = cfg.num_heads * cfg.d_kv
        heads = lambda t: t.reshape(t.shape[:-1] + (cfg.num_heads, cfg.d_kv))  # noqa: E731
        q_BLND, k_BLND, v_BLND = (
            heads(layers.Dense(inner, ("embed", "heads"), use_bias=False, dtype=self.dtype, name=p)(x_BLD))
            for p in "qkv"
        )
        if self.has_relative_bias:
            length = x_BLD.shape[1]
            pos_L = jnp.arange(length)
            buckets_LL = relative_position_bucket(
                pos_L[None, :] - pos_L[:, None], cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
            )
            table = embed(cfg.relative_attention_num_buckets, cfg.num_heads, "relative_attention_bias", (None, "heads"))
            # The lookup gives (L, L, N); heads first, one row shared by the whole batch: (1, N, L, L).
            bias_BNLL = jnp.transpose(table(buckets_LL), (2, 0, 1))[None].astype(jnp.float32)
        mask_B11L = mask_BL.astype(bool)[:, None, None, :]
        o_BLND = jax.nn.dot_product_attention(
            q_BLND, k_BLND, v_BLND, bias=bias_BNLL.astype(q_BLND.dtype), mask=mask_B11L, scale=1.0
        )
        out = layers.Dense(cfg.d_model, ("heads", "embed"), use_bias=False, dtype=self.dtype, name="o")(
            o_BLND.reshape(o_BLND.shape[:-2] + (inner,))
        )
        return out, bias_BNLL


class T5FeedForward(nn.Module):
    """relu: wo(act(wi x)); gated: wo(act(wi_0 x) * wi_1 x)."""

    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg, act = self.cfg, activation(self.cfg.act_name)
        dense = lambda f, names, name: layers.Dense(f, names, use_bias=False, dtype=self.dtype, name=name)  # noqa
        if cfg.gated:
            h = act(dense(cfg.d_ff, ("embed", "mlp"), "wi_0")(x)) * dense(cfg.d_ff, ("embed", "mlp"), "wi_1")(x)
        else:
            h = act(dense(cfg.d_ff, ("embed", "mlp"), "wi")(x))
        h = layers.constrain(h, ("activation_batch", "activation_length", "activation_mlp"))
        return dense(cfg.d_model, ("mlp", "embed"), "wo")(h)


class _Sublayer(nn.Module):
    """`layer_N` of a T5 block: pre-RMS-norm residual around attention (N=0) or feed-forward (N=1)."""

    cfg: T5Config
    is_attention: bool
    has_relative_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, mask):
        h = T5LayerNorm(self.cfg.layer_norm_epsilon, self.dtype, name="layer_norm")(x)
        if self.is_attention:
            h, bias = T5Attention(self.cfg, self.has_relative_bias, self.dtype, name="SelfAttention")(h, bias, mask)
        else:
            h = T5FeedForward(self.cfg, self.dtype, name="DenseReluDense")(h)
        return layers.constrain(x + h, _ACT), bias


class T5Block(nn.Module):
    cfg: T5Config
    has_relative_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, mask):
        x, bias = _Sublayer(self.cfg, True, self.has_relative_bias, self.dtype, name="layer_0")(x, bias, mask)
        x, _ = _Sublayer(self.cfg, False, dtype=self.dtype, name="layer_1")(x, bias, mask)
        return x, bias


class T5Stack(nn.Module):
    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        bias = None
        for i in range(self.cfg.num_layers):
            x, bias = T5Block(self.cfg, i == 0, self.dtype, name=f"block_{i}")(x, bias, mask)
        return T5LayerNorm(self.cfg.layer_norm_epsilon, self.dtype, name="final_layer_norm")(x)


class T5Encoder(nn.Module):
    """ids (B, L) int, mask (B, L) bool -> last hidden state (B, L, d_model)."""

    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids_BL: Array, mask_BL: Array) -> Array:
        x = embed(self.cfg.vocab_size, self.cfg.d_model, "shared")(ids_BL).astype(self.dtype)
        return T5Stack(self.cfg, self.dtype, name="encoder")(layers.constrain(x, _ACT), mask_BL)
