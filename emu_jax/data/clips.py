"""Clip sampling (which timestamps to decode) and frame preprocessing (resize, centre crop, [-1, 1]).

Emu Video trains on uniformly placed clips at a fixed frame rate (8 fps x 1 s,
4 fps x 2 s); sources come at 24, 25, 30 fps or variable rates, so frames are
picked by nearest timestamp rather than by index stride.
"""

from __future__ import annotations

import numpy as np

from emu_jax.data import video_io

RESIZE_METHODS = ("bicubic", "box", "bilinear", "lanczos")


def clip_times(
    *, duration: float, src_fps: float, num_frames: int, fps: float | None, rng: np.random.Generator | None
) -> np.ndarray:
    """Timestamps (s) of `num_frames` frames spaced 1/`fps` apart, starting uniformly in the video.

    `duration` is the source length (num_src_frames / src_fps); the last
    usable timestamp is that of the last source frame. `fps=None` keeps the
    source rate. `rng=None` picks the centred clip (evaluation, latent cache).
    A source shorter than the clip starts at 0 (the decoder repeats its last frame).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    step = 1.0 / (fps or src_fps)
    last = max(0.0, duration - 1.0 / src_fps)
    slack = last - (num_frames - 1) * step
    if slack <= 0:
        start = 0.0
    elif rng is None:
        start = slack / 2
    else:
        start = float(rng.uniform(0.0, slack))
    return start + step * np.arange(num_frames)


def clip_seconds_needed(num_frames: int, fps: float) -> float:
    """Shortest source duration (s) that holds a `num_frames` clip at `fps` without repeats."""
    return (num_frames - 1) / fps


def resize_center_crop(frames_THWC: np.ndarray, resolution: int, method: str = "bicubic") -> np.ndarray:
    """Resizes the shorter side to `resolution` (PIL) then crops the centre square -> uint8 (T, R, R, 3)."""
    from PIL import Image

    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method {method!r} is not one of {RESIZE_METHODS}")
    t, h, w, _ = frames_THWC.shape
    scale = resolution / min(h, w)
    nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    if (nh, nw) == (h, w):
        return np.ascontiguousarray(frames_THWC[:, top : top + resolution, left : left + resolution])
    resample = {"bicubic": Image.BICUBIC, "box": Image.BOX, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}[
        method
    ]
    out = np.empty((t, resolution, resolution, 3), np.uint8)
    for i, frame in enumerate(frames_THWC):
        img = Image.fromarray(frame).resize((nw, nh), resample=resample)
        out[i] = np.asarray(img)[top : top + resolution, left : left + resolution]
    return out


def to_unit_range(frames_uint8: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return frames_uint8.astype(np.float32) * (2.0 / 255.0) - 1.0


def from_unit_range(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255] (clipped); the inverse of `to_unit_range` for saving samples."""
    return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def load_clip(
    video: video_io.Source,
    *,
    src_fps: float,
    src_num_frames: int,
    num_frames: int,
    fps: float | None,
    resolution: int,
    resize_method: str = "bicubic",
    rng: np.random.Generator | None = None,
    keep_frames: int = 0,
) -> np.ndarray:
    """Samples, decodes (seeking) and preprocesses one clip -> float32 (T, R, R, 3) in [-1, 1].

    `keep_frames` K > 0 decodes only the clip's first K frames: with K = 1 a text-to-image model sees
    the frames a video model is conditioned on (the first frame of each clip), not any frame.
    """
    if not 0 <= keep_frames <= num_frames:
        raise ValueError(f"keep_frames={keep_frames} must be in [0, num_frames={num_frames}] (0 keeps all)")
    times = clip_times(duration=src_num_frames / src_fps, src_fps=src_fps, num_frames=num_frames, fps=fps, rng=rng)[
        : keep_frames or None
    ]
    frames = video_io.decode_at_times(video, times)
    return to_unit_range(resize_center_crop(frames, resolution, resize_method))
