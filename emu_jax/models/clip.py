"""CLIP text transformer (transformers `CLIPTextModel` twin): causal, pre-LN, pooled at EOS.

Submodule names mirror the transformers module paths ('.N' -> '_N') so the
converter is a renaming. Output: per-token hidden states after the final
layer norm (B, L, D) and the pooled EOS state (B, D) (projected for
`CLIPTextModelWithProjection` configs).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.models import layers
from emu_jax.models.text_config import CLIPTextConfig, activation

Array = jax.Array
_ACT = ("activation_batch", "activation_length", "activation_embed")


def embed(num: int, features: int, name: str, names=("vocab", "embed")) -> nn.Embed:
    """Lookup table (token / position / bias buckets) with logical names (default ('vocab', 'embed'))."""
    init = layers.partitioned(nn.initializers.normal(0.02), names)
    return nn.Embed(num, features, embedding_init=init, name=name)


class CLIPEmbeddings(nn.Module):
    cfg: CLIPTextConfig

    @nn.compact
    def __call__(self, ids_BL: Array) -> Array:
        tok = embed(self.cfg.vocab_size, self.cfg.hidden_size, "token_embedding")(ids_BL)
        pos = embed(self.cfg.max_position_embeddings, self.cfg.hidden_size, "position_embedding")(
            jnp.arange(ids_BL.shape[1])
        )
        return tok + pos[None]


class CLIPAttention(nn.Module):
    """Multi-head self-attention with biased q/k/v/out projections; `mask_BNLL` True = attend."""

    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BLD: Array, mask_BNLL: Array) -> Array:
        d, n = self.cfg.hidden_size, self.cfg.num_attention_heads
        heads = lambda t: t.reshape(t.shape[:-1] + (n, d // n))  # noqa: E731
        q, k, v = (heads(layers.Dense(d, ("embed", "heads"), dtype=self.dtype, name=f"{p}_proj")(x_BLD)) for p in "qkv")
        o = jax.nn.dot_product_attention(q, k, v, mask=mask_BNLL)  # scale 1/sqrt(head_dim), as CLIP
        return layers.Dense(d, ("heads", "embed"), dtype=self.dtype, name="out_proj")(o.reshape(x_BLD.shape))


class CLIPMLP(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = layers.Dense(self.cfg.intermediate_size, ("embed", "mlp"), dtype=self.dtype, name="fc1")(x)
        h = layers.constrain(
            activation(self.cfg.hidden_act)(h), ("activation_batch", "activation_length", "activation_mlp")
        )
        return layers.Dense(self.cfg.hidden_size, ("mlp", "embed"), dtype=self.dtype, name="fc2")(h)


class CLIPEncoderLayer(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask_BNLL: Array) -> Array:
        eps = self.cfg.layer_norm_eps
        x = x + CLIPAttention(self.cfg, self.dtype, name="self_attn")(
            layers.LayerNorm(eps, self.dtype, name="layer_norm1")(x), mask_BNLL
        )
        x = x + CLIPMLP(self.cfg, self.dtype, name="mlp")(layers.LayerNorm(eps, self.dtype, name="layer_norm2")(x))
        return layers.constrain(x, _ACT)


class CLIPEncoder(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask_BNLL: Array) -> Array:
        for i in range(self.cfg.num_hidden_layers):
            x = CLIPEncoderLayer(self.cfg, self.dtype, name=f"layers_{i}")(x, mask_BNLL)
        return x


def eos_positions(cfg: CLIPTextConfig, ids_BL: Array) -> Array:
    """Index of the pooled token per row, as transformers: argmax id for legacy eos_token_id == 2,
    else the first position holding eos_token_id."""
    if cfg.eos_token_id == 2:
        return jnp.argmax(ids_BL, axis=-1)
    return jnp.argmax((ids_BL == cfg.eos_token_id).astype(jnp.int32), axis=-1)


class CLIPTextTransformer(nn.Module):
    """ids (B, L) int, mask (B, L) bool -> (hidden (B, L, D), pooled (B, D or projection_dim))."""

    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids_BL: Array, mask_BL: Array) -> tuple[Array, Array]:
        x = CLIPEmbeddings(self.cfg, name="embeddings")(ids_BL).astype(self.dtype)
        x = layers.constrain(x, _ACT)
        length = ids_BL.shape[1]
        causal = jnp.tril(jnp.ones((length, length), bool))
        mask_BNLL = causal[None, None] & mask_BL.astype(bool)[:, None, None, :]
        x = CLIPEncoder(self.cfg, self.dtype, name="encoder")(x, mask_BNLL)
        x = layers.LayerNorm(self.cfg.layer_norm_eps, self.dtype, name="final_layer_norm")(x)
        pooled = x[jnp.arange(x.shape[0]), eos_positions(self.cfg, ids_BL)]
        if self.cfg.projection_dim:
            pooled = layers.Dense(
                self.cfg.projection_dim, ("embed", None), use_bias=False, dtype=self.dtype, name="text_projection"
            )(pooled)
        return x, pooled
