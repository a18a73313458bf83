"""Convert transformers CLIP folders for CLIP score: the vision tower + projection, and the text side beside it.

Accepts a `CLIPVisionModelWithProjection` folder (vision only) or a full
`CLIPModel` folder (e.g. openai/clip-vit-large-patch14 saved with
safetensors), whose text half goes through the existing text converter.
"""

from __future__ import annotations

import jax

from emu_jax.convert import text as text_convert
from emu_jax.convert.common import ConversionChecker, load_safetensors_dir, read_config_json
from emu_jax.convert.torch_names import assign_by_name
from emu_jax.convert.vae import TRANSFORMERS_WEIGHTS, require_weights
from emu_jax.metrics.clip_vision import CLIPVisionConfig, init_params
from emu_jax.models.text import CLIPTextConfig

_VISION_PREFIX = "vision_model."
_IGNORED = ("vision_model.embeddings.position_ids",)


def _is_text_key(key: str) -> bool:
    return key.startswith("text_model.") or key in ("text_projection.weight", "logit_scale")


def convert_vision_state(cfg: CLIPVisionConfig, state: dict) -> dict:
    """transformers vision state dict (vision_model.* + visual_projection.weight) -> our params."""
    state = {k: v for k, v in state.items() if not _is_text_key(k)}
    target = jax.eval_shape(lambda rng: init_params(cfg, rng), jax.random.key(0))
    checker = ConversionChecker(state, target)

    def rename(key):
        if key in _IGNORED:
            return None
        return key[len(_VISION_PREFIX) :] if key.startswith(_VISION_PREFIX) else key

    assign_by_name(checker, rename)
    return checker.finish(ignore_unused=_IGNORED)


def from_transformers_clip_vision(path: str) -> tuple[CLIPVisionConfig, dict]:
    """CLIPVisionModelWithProjection or CLIPModel folder -> (CLIPVisionConfig, params)."""
    require_weights(path, TRANSFORMERS_WEIGHTS)
    cfg = CLIPVisionConfig.from_hf_config(read_config_json(path))
    return cfg, convert_vision_state(cfg, load_safetensors_dir(path))


def from_transformers_clip_model(path: str) -> tuple[CLIPTextConfig, dict, CLIPVisionConfig, dict]:
    """Full CLIPModel folder -> (text cfg, {"params"} for the text encoder, vision cfg, vision params)."""
    require_weights(path, TRANSFORMERS_WEIGHTS)
    hf = read_config_json(path)
    state = load_safetensors_dir(path)
    if "text_projection.weight" not in state or "visual_projection.weight" not in state:
        raise ValueError(
            f"{path!r} is not a full CLIPModel: CLIP score needs both text_projection and visual_projection weights"
        )
    text_cfg = CLIPTextConfig.from_hf_config(hf)
    text_cfg = CLIPTextConfig.from_dict(
        {**text_cfg.to_dict(), "projection_dim": state["text_projection.weight"].shape[0]}
    )
    text_state = {k: v for k, v in state.items() if _is_text_key(k) and k != "logit_scale"}
    strip = lambda k: k[len("text_model.") :] if k.startswith("text_model.") else k  # noqa: E731
    text_params = text_convert._convert(text_cfg, text_state, text_convert._CLIP_IGNORED, strip)
    vision_cfg = CLIPVisionConfig.from_hf_config(hf)
    return text_cfg, text_params, vision_cfg, convert_vision_state(vision_cfg, state)
