"""Text encoder configs (CLIP text, T5 encoder): dataclasses storable as JSON, buildable from a
transformers config.json, and the input checks both encoders share.

The modules live in `clip.py` and `t5.py`, which import this; `text.py` builds and calls them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax

ACTIVATIONS = ("quick_gelu", "gelu", "gelu_new", "relu", "silu")


def activation(name: str):
    """Activation by transformers' name: quick_gelu, gelu (erf), gelu_new (tanh approx), relu, silu."""
    if name == "quick_gelu":
        return lambda x: x * jax.nn.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "relu":
        return jax.nn.relu
    if name == "silu":
        return jax.nn.silu
    raise ValueError(f"unsupported activation {name!r}; allowed: {ACTIVATIONS}")


class _DictConfig:
    """from_dict / to_dict for the frozen config dataclasses below (JSON-friendly)."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(names)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig(_DictConfig):
    """CLIP text transformer (causal, pre-LN); pooled output is the hidden state at EOS."""

    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407
    projection_dim: int = 0  # > 0: CLIPTextModelWithProjection's `text_projection` (no bias)
    dtype: str = "float32"

    def __post_init__(self):
        activation(self.hidden_act)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )

    @property
    def width(self) -> int:
        return self.hidden_size

    @classmethod
    def from_hf_config(cls, d: Mapping[str, Any]) -> "CLIPTextConfig":
        """From a transformers CLIPTextConfig dict (or a full CLIPConfig's `text_config`)."""
        d = d.get("text_config", d) if "text_config" in d and "hidden_size" not in d else d
        with_proj = "CLIPTextModelWithProjection" in (d.get("architectures") or [])
        return cls(
            vocab_size=d.get("vocab_size", 49408),
            hidden_size=d.get("hidden_size", 512),
            intermediate_size=d.get("intermediate_size", 2048),
            num_hidden_layers=d.get("num_hidden_layers", 12),
            num_attention_heads=d.get("num_attention_heads", 8),
            max_position_embeddings=d.get("max_position_embeddings", 77),
            hidden_act=d.get("hidden_act", "quick_gelu"),
            layer_norm_eps=d.get("layer_norm_eps", 1e-5),
            eos_token_id=d.get("eos_token_id", 2),
            projection_dim=d.get("projection_dim", 512) if with_proj else 0,
        )


@dataclasses.dataclass(frozen=True)
class T5Config(_DictConfig):
    """T5 encoder stack: RMS norms, relative position bias from layer 0, unscaled attention."""

    vocab_size: int = 32128
    d_model: int = 2048
    d_kv: int = 64
    d_ff: int = 5120
    num_layers: int = 24
    num_heads: int = 32
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"  # "relu" (T5 1.0) or "gated-<act>" (T5 v1.1 / XL)
    dtype: str = "float32"

    def __post_init__(self):
        activation(self.act_name)

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def act_name(self) -> str:
        act = self.feed_forward_proj.split("-")[-1]
        # transformers maps "gated-gelu" to the tanh approximation (gelu_new).
        return "gelu_new" if self.feed_forward_proj == "gated-gelu" else act

    @property
    def width(self) -> int:
        return self.d_model

    @classmethod
    def from_hf_config(cls, d: Mapping[str, Any]) -> "T5Config":
        ff = d.get("feed_forward_proj", "relu")
        if not (ff == "relu" or ff.startswith("gated-")) or len(ff.split("-")) > 2:
            raise ValueError(f"unsupported T5 feed_forward_proj {ff!r}; allowed: 'relu', 'gated-<act>'")
        return cls(
            vocab_size=d.get("vocab_size", 32128),
            d_model=d.get("d_model", 512),
            d_kv=d.get("d_kv", 64),
            d_ff=d.get("d_ff", 2048),
            num_layers=d.get("num_layers", 6),
            num_heads=d.get("num_heads", 8),
            relative_attention_num_buckets=d.get("relative_attention_num_buckets", 32),
            relative_attention_max_distance=d.get("relative_attention_max_distance", 128),
            layer_norm_epsilon=d.get("layer_norm_epsilon", 1e-6),
            feed_forward_proj=ff,
        )


TextConfig = CLIPTextConfig | T5Config
KINDS = {"clip": CLIPTextConfig, "t5": T5Config}


def kind_of(cfg: TextConfig) -> str:
    return "clip" if isinstance(cfg, CLIPTextConfig) else "t5"


def config_from_dict(kind: str, d: Mapping[str, Any]) -> TextConfig:
    if kind not in KINDS:
        raise ValueError(f"unknown text encoder kind {kind!r}; allowed: {sorted(KINDS)}")
    return KINDS[kind].from_dict(d)


def check_ids(cfg: TextConfig, ids_shape, mask_shape=None) -> None:
    """ValueError if token ids (B, L) / mask (B, L) do not fit the encoder."""
    if len(ids_shape) != 2:
        raise ValueError(f"token ids must be (B, L), got shape {tuple(ids_shape)}")
    if mask_shape is not None and tuple(mask_shape) != tuple(ids_shape):
        raise ValueError(f"mask shape {tuple(mask_shape)} differs from ids shape {tuple(ids_shape)}")
    if isinstance(cfg, CLIPTextConfig) and ids_shape[1] > cfg.max_position_embeddings:
        raise ValueError(f"{ids_shape[1]} tokens exceed CLIP's max_position_embeddings {cfg.max_position_embeddings}")
