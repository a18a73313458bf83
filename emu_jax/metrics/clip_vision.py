"""CLIP vision tower + visual projection (transformers `CLIPVisionModelWithProjection` twin) and its preprocessing.

The encoder layers are our CLIP text model's (`emu_jax.models.clip.CLIPEncoder`,
pre-LN, quick_gelu) run without a mask; submodule names mirror transformers
(`vision_model.encoder.layers.0.mlp.fc1` -> `encoder/layers_0/mlp/fc1`) so
`emu_jax.convert.clip_vision` is a renaming. Output: the projected CLS
embedding (B, projection_dim), as `image_embeds`.

Preprocessing follows `CLIPImageProcessor`: shorter side resized to
`image_size` (bicubic), centre crop, /255, normalised with the OpenAI
mean/std. The resize is jax's antialiased bicubic, not PIL's, so pixel
values differ slightly from transformers' processor (the network matches
exactly given the same pixel values).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.metrics.layers import as_float
from emu_jax.models import layers
from emu_jax.models.clip import CLIPEncoder, embed
from emu_jax.models.text import activation

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 768

    def __post_init__(self):
        activation(self.hidden_act)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    @classmethod
    def from_hf_config(cls, d: Mapping[str, Any]) -> "CLIPVisionConfig":
        """From a transformers CLIPVisionConfig dict or a full CLIPConfig (its `vision_config`)."""
        projection_dim = d.get("projection_dim", 512)
        v = d.get("vision_config", d) if "vision_config" in d else d
        return cls(
            hidden_size=v.get("hidden_size", 768),
            intermediate_size=v.get("intermediate_size", 3072),
            num_hidden_layers=v.get("num_hidden_layers", 12),
            num_attention_heads=v.get("num_attention_heads", 12),
            image_size=v.get("image_size", 224),
            patch_size=v.get("patch_size", 32),
            hidden_act=v.get("hidden_act", "quick_gelu"),
            layer_norm_eps=v.get("layer_norm_eps", 1e-5),
            projection_dim=v.get("projection_dim", projection_dim),
        )


class CLIPVisionEmbeddings(nn.Module):
    cfg: CLIPVisionConfig

    @nn.compact
    def __call__(self, pixels_BHWC):
        d, p = self.cfg.hidden_size, self.cfg.patch_size
        x = nn.Conv(d, (p, p), (p, p), padding="VALID", use_bias=False, name="patch_embedding")(pixels_BHWC)
        x = x.reshape(x.shape[0], -1, d)
        cls = self.param("class_embedding", nn.initializers.normal(0.02), (d,))
        x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, d)), x], axis=1)
        num_positions = (self.cfg.image_size // p) ** 2 + 1
        pos = embed(num_positions, d, "position_embedding")(jnp.arange(num_positions))
        return x + pos[None]


class CLIPVisionTransformer(nn.Module):
    """(B, S, S, 3) normalised pixels (S = image_size) -> (B, projection_dim) image embeddings."""

    cfg: CLIPVisionConfig

    @nn.compact
    def __call__(self, pixels_BHWC):
        eps = self.cfg.layer_norm_eps
        x = CLIPVisionEmbeddings(self.cfg, name="embeddings")(pixels_BHWC)
        x = layers.LayerNorm(eps, name="pre_layrnorm")(x)  # transformers' spelling
        x = CLIPEncoder(self.cfg, name="encoder")(x, None)
        pooled = layers.LayerNorm(eps, name="post_layernorm")(x[:, 0])
        return layers.Dense(self.cfg.projection_dim, ("embed", None), use_bias=False, name="visual_projection")(pooled)


def init_params(cfg: CLIPVisionConfig, rng: jax.Array) -> dict:
    s = cfg.image_size
    return nn.meta.unbox(CLIPVisionTransformer(cfg).init(rng, jnp.zeros((1, s, s, 3))))["params"]


def preprocess(images_BHWC, size: int, mean=OPENAI_MEAN, std=OPENAI_STD) -> jax.Array:
    """uint8 / [0, 1] images -> CLIP pixel values (B, size, size, 3): short side resize, centre crop, normalise."""
    x = as_float(images_BHWC)
    b, h, w, c = x.shape
    scale = size / min(h, w)
    th, tw = max(size, round(h * scale)), max(size, round(w * scale))
    if (th, tw) != (h, w):
        x = jax.image.resize(x, (b, th, tw, c), method="bicubic", antialias=True)
    top, left = (th - size) // 2, (tw - size) // 2
    x = jnp.clip(x[:, top : top + size, left : left + size], 0.0, 1.0)  # PIL rounds to uint8 range
    return (x - jnp.asarray(mean)) / jnp.asarray(std)


def image_embeddings(cfg: CLIPVisionConfig, params, images_BHWC) -> jax.Array:
    """Projected image embeddings (B, projection_dim) of uint8 or [0, 1] images of any size."""
    return CLIPVisionTransformer(cfg).apply({"params": params}, preprocess(images_BHWC, cfg.image_size))
