"""What the sampling Pipeline hands back: one `Sample` per item, cut out of a decoded batch, and the
host-side NaN / Inf check (`NonFiniteError` names the stage) that runs before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np


class NonFiniteError(ValueError):
    """A stage produced NaN / Inf; raised before anything of that batch is written."""


def check_finite(x: np.ndarray, stage: str, indices: Sequence[int]) -> None:
    """NonFiniteError naming the stage and prompt indices whose rows (B, ...) hold NaN / Inf."""
    bad = [int(i) for i, row in zip(indices, x) if not np.isfinite(row).all()]
    if bad:
        raise NonFiniteError(
            f"stage {stage!r} produced NaN/Inf values for prompt index(es) {bad}; nothing of this batch is written"
        )


@dataclasses.dataclass
class Sample:
    """One generated item: uint8 pixels, what ran, and the batch's seconds per stage."""

    index: int
    prompt: str
    keyframe: np.ndarray  # (H, W, 3)
    video: np.ndarray | None  # (T, H, W, 3) at fps
    fps: int
    interpolated: np.ndarray | None = None  # (S, H, W, 3) at interp_fps
    interp_fps: int | None = None
    latents: dict = dataclasses.field(default_factory=dict)
    stages: list = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    noise_sha256: dict = dataclasses.field(default_factory=dict)  # per stage: the item's initial sampler state


def make_sample(
    i, frames, latents, prompts, indices, image, ran, timings, *, cfg, interp_factor, notes, start_x, batch
) -> Sample:
    """Item `i` of a decoded batch: its keyframe, video and interpolated frames out of `frames` (B, T, H, W, 3)."""
    t = 1 if "keyframe" in latents else 0  # direct text-to-video has no keyframe: its first frame stands in
    kf = frames[i, 0] if image is None else image[i]
    s = Sample(
        indices[i],
        prompts[i],
        kf,
        None,
        cfg.fps,
        stages=list(ran),
        timings=dict(timings),
        notes=list(notes),
        latents={k: v[i] for k, v in latents.items()},
        noise_sha256={k: _sha(x, i, batch) for k, x in start_x.items()},
    )
    if "video" in latents:
        s.video = frames[i, t : t + cfg.num_frames]
        t += cfg.num_frames
    if "interp" in latents:
        s.interpolated = frames[i, t:]
        s.interp_fps = cfg.fps * interp_factor
    return s


def _sha(x: np.ndarray, i: int, batch: int) -> str:
    """sha256 (16 hex) of item i's rows of a (batch * rows_per_item, ...) array (interpolation: one row per half)."""
    rows = x.shape[0] // batch
    return hashlib.sha256(np.ascontiguousarray(x[i * rows : (i + 1) * rows]).tobytes()).hexdigest()[:16]
