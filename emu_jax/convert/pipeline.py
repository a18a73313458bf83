"""A whole diffusers pipeline folder -> an emu_jax checkpoint folder (see `emu_jax.model_folder`).

Reads `unet/`, `vae/`, `text_encoder/` (+ optional `text_encoder_2/`) and
their `tokenizer*/` folders, converts each with its converter, checks that
the pieces fit together (`EmuConfig`) and that each tokenizer fits its
encoder's vocabulary, and only then writes `emu_jax.json`, `params/` and a
copy of the tokenizer files.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from emu_jax.model_folder import save_checkpoint

# (encoder folder, tokenizer folder) pairs a diffusers pipeline may hold, in context order.
TEXT_COMPONENTS = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))
_MAX_LENGTH_FALLBACK = 77  # CLIP's context length; used when tokenizer_config.json gives none


def _text_kind(folder: str) -> str:
    from emu_jax.convert.common import read_config_json

    d = read_config_json(folder)
    model_type = d.get("model_type", "")
    if model_type.startswith("clip"):
        return "clip"
    if model_type == "t5":
        return "t5"
    raise ValueError(
        f"{folder}: text encoder model_type {model_type!r} is not supported; "
        "allowed: CLIP text models ('clip_text_model') and T5 encoders ('t5')"
    )


def _max_length(tok_dir: str, text_cfg) -> int:
    """tokenizer_config.json's model_max_length, capped by CLIP's position table."""
    n = _MAX_LENGTH_FALLBACK
    path = os.path.join(tok_dir, "tokenizer_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            v = json.load(f).get("model_max_length")
        if isinstance(v, (int, float)) and 0 < v < 100_000:  # transformers writes 1e30 for "no limit"
            n = int(v)
    return min(n, getattr(text_cfg, "max_position_embeddings", n))


def _check_source(src: str) -> None:
    if not os.path.isdir(src):
        raise FileNotFoundError(f"diffusers pipeline folder {src!r} does not exist")
    missing = [c for c in ("unet", "vae", "text_encoder", "tokenizer") if not os.path.isdir(os.path.join(src, c))]
    if missing:
        raise FileNotFoundError(
            f"{src!r} is not a diffusers text-to-image pipeline folder: it lacks "
            f"{missing} (found {sorted(os.listdir(src))})"
        )


def convert_diffusers_pipeline(
    src: str,
    out: str,
    cond_channels: int | None = None,
    temporal: bool = True,
    num_frames: int = 8,
    fps: int = 4,
    log=print,
) -> dict[str, Any]:
    """Convert `src` (diffusers pipeline folder) into the emu_jax checkpoint folder `out`; returns its meta.

    `cond_channels` (default latent channels + 1: image latent + mask, SPEC)
    adds the zero-initialised conditioning input conv; `temporal` adds
    identity-initialised temporal layers, so the result is model F ready to
    fine-tune and, with temporal layers off, equals the source T2I model.
    """
    from emu_jax.convert.text import from_transformers_clip, from_transformers_t5
    from emu_jax.convert.unet import from_diffusers_unet
    from emu_jax.convert.vae import from_diffusers_vae
    from emu_jax.models.emu import EmuConfig, TextEncoderSpec
    from emu_jax.models.tokenizers import check_vocab, load_tokenizer

    _check_source(src)
    if os.path.exists(out) and os.listdir(out):
        raise FileExistsError(f"output folder {out!r} exists and is not empty; choose a new one")
    vae_cfg, vae_params = from_diffusers_vae(os.path.join(src, "vae"))
    log(f"vae: {vae_cfg.latent_channels} latent channels, scale {vae_cfg.scaling_factor}")
    cond = vae_cfg.latent_channels + 1 if cond_channels is None else int(cond_channels)
    unet_cfg, unet_params = from_diffusers_unet(os.path.join(src, "unet"), cond_channels=cond, temporal=temporal)
    log(
        f"unet: {unet_cfg.model_channels} channels x {unet_cfg.channel_mult}, cond_channels {cond}, temporal {temporal}"
    )
    specs, text_params = [], {}
    for enc, tok in TEXT_COMPONENTS:
        enc_dir, tok_dir = os.path.join(src, enc), os.path.join(src, tok)
        if not os.path.isdir(enc_dir):
            continue
        kind = _text_kind(enc_dir)
        cfg, params = (from_transformers_clip if kind == "clip" else from_transformers_t5)(enc_dir)
        check_vocab(load_tokenizer(tok_dir), cfg.vocab_size)
        specs.append(TextEncoderSpec(kind=kind, config=cfg, max_length=_max_length(tok_dir, cfg), tokenizer=tok))
        text_params[str(len(text_params))] = params["params"]
        log(f"{enc}: {kind}, width {cfg.width}, tokenizer {tok} (max_length {specs[-1].max_length})")
    with open(os.path.join(src, "unet", "config.json")) as f:
        sample_size = json.load(f).get("sample_size", 64)
    sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
    config = EmuConfig(
        unet=unet_cfg,
        vae=vae_cfg,
        text=tuple(specs),
        resolution=int(sample_size) * vae_cfg.downsample_factor,
        num_frames=num_frames,
        fps=fps,
    )
    meta = {**config.to_dict(), "source": {"diffusers_pipeline": os.path.abspath(src)}}
    save_checkpoint(out, meta, {"unet": unet_params, "vae": vae_params["params"], "text": text_params})
    for spec in specs:
        shutil.copytree(os.path.join(src, spec.tokenizer), os.path.join(out, spec.tokenizer))
    log(f"wrote {out}")
    return meta
