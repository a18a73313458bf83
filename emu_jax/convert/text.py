"""Convert transformers `CLIPTextModel(WithProjection)` and `T5EncoderModel` folders into our params."""

from __future__ import annotations

import jax.numpy as jnp

from emu_jax.convert.common import ConversionChecker, load_safetensors_dir, read_config_json
from emu_jax.convert.torch_names import assign_by_name
from emu_jax.convert.vae import TRANSFORMERS_WEIGHTS, require_weights, target_shapes
from emu_jax.models.text import CLIPTextConfig, T5Config, build_module

# Buffers and tied copies that carry no weights of their own.
_CLIP_IGNORED = ("text_model.embeddings.position_ids",)
_T5_IGNORED = ("encoder.embed_tokens.weight",)


def _convert(cfg, state: dict, ignored: tuple[str, ...], rename) -> dict:
    length = min(8, getattr(cfg, "max_position_embeddings", 8))
    ids = jnp.zeros((1, length), jnp.int32)
    target = target_shapes(build_module(cfg), ids, jnp.ones((1, length), bool))
    checker = ConversionChecker(state, target)
    assign_by_name(checker, lambda k: None if k in ignored else rename(k))
    return {"params": checker.finish(ignore_unused=ignored)}


def from_transformers_clip(path: str) -> tuple[CLIPTextConfig, dict]:
    """transformers CLIPTextModel / CLIPTextModelWithProjection folder -> (CLIPTextConfig, {"params": ...})."""
    require_weights(path, TRANSFORMERS_WEIGHTS)
    cfg = CLIPTextConfig.from_hf_config(read_config_json(path))
    state = load_safetensors_dir(path)
    if cfg.projection_dim == 0 and "text_projection.weight" in state:
        cfg = CLIPTextConfig.from_dict({**cfg.to_dict(), "projection_dim": state["text_projection.weight"].shape[0]})
    strip = lambda k: k[len("text_model.") :] if k.startswith("text_model.") else k  # noqa: E731
    return cfg, _convert(cfg, state, _CLIP_IGNORED, strip)


def from_transformers_t5(path: str) -> tuple[T5Config, dict]:
    """transformers T5EncoderModel folder -> (T5Config, {"params": ...}); the encoder's tied table is `shared`."""
    require_weights(path, TRANSFORMERS_WEIGHTS)
    cfg = T5Config.from_hf_config(read_config_json(path))
    state = load_safetensors_dir(path)
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state.pop("encoder.embed_tokens.weight")
    return cfg, _convert(cfg, state, _T5_IGNORED, lambda k: k)
