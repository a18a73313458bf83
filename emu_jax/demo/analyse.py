"""Reads a moving-shapes video back into attributes: background, shape colour and class, motion, consistency.

Per frame (`analyse_frame`): the background (median border colour), the
shape's pixels (far from the background), their colour and centroid, and the
shape class by template matching (each class rendered with the same area and centroid, compared with
the frame's anti-aliased coverage), fits a line to
the centroid track for the motion direction, and measures how stable the
shape's area and colour stay over time, and how smoothly it moves (`jump_ratio`). `score` compares a reading with the
attributes a prompt asked for; `start_side` checks that the keyframe puts the
shape where its prompted motion can start.
"""

from __future__ import annotations

import collections
from typing import Mapping, Sequence

import numpy as np

from emu_jax.demo import shapes

ATTRIBUTES = ("background", "color", "shape", "direction")
FAR = 110.0  # distance from the background colour that marks a shape pixel: half the minimum fg/bg distance
MIN_AREA = 4  # pixels; smaller blobs are noise, not a shape
MIN_SHIFT = 0.5  # pixels over the clip; less is "static"
# A video "jumps" when one frame-to-frame step of the shape exceeds JUMP_LIMIT x its median step; steps under
# MIN_STEP px count as MIN_STEP, so sub-pixel wobble of a near-static shape is not a jump.
JUMP_LIMIT = 3.0
MIN_STEP = 0.05


def shape_mask(frame_HWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask (H, W) bool of shape pixels, background RGB) for one uint8 frame."""
    f = np.asarray(frame_HWC, np.float32)
    border = np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]])
    bg = np.median(border, axis=0)
    return np.linalg.norm(f - bg, axis=-1) > FAR, bg


def coverage(frame_HWC: np.ndarray, bg_rgb: np.ndarray, fg_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel shape coverage in [0, 1]: the frame's position between background and shape colour."""
    d = np.asarray(fg_rgb, np.float32) - bg_rgb
    c = (np.asarray(frame_HWC, np.float32) - bg_rgb) @ d / max(float(d @ d), 1e-6)
    return np.clip(c, 0.0, 1.0)


def _template(shape: str, cover_HW: np.ndarray) -> np.ndarray:
    """The anti-aliased coverage `shape` would have with the same area and centroid as `cover_HW`."""
    size = cover_HW.shape[0]
    area = float(cover_HW.sum())
    ys, xs = np.mgrid[:size, :size] + 0.5
    cx, cy = (cover_HW * xs).sum() / area, (cover_HW * ys).sum() / area
    side = {"square": np.sqrt(area), "circle": 2.0 * np.sqrt(area / np.pi)}.get(shape, np.sqrt(2.0 * area))
    side = float(np.clip(side, 1.0, size - 3.0))  # keeps a free path > 0 for the renderer
    top = cy - (2.0 / 3.0 if shape == "triangle" else 0.5) * side  # the triangle's centroid is 2/3 down
    free = size - side - 2.0
    # Rendered through the dataset's own renderer: white on black is the coverage itself.
    attrs = shapes.ShapeAttrs(
        shape=shape,
        color="yellow",
        background="black",
        direction="right",
        speed=0.0,
        size=side / size,
        start_x=float(np.clip((cx - side / 2 - 1.0) / free, 0, 1)),
        start_y=float(np.clip((top - 1.0) / free, 0, 1)),
    )
    return shapes.render_clip(attrs, 1, size)[0, ..., 0].astype(np.float32) / 255.0


def _pool2(x_HW: np.ndarray) -> np.ndarray:
    """2x2 mean pooling: compares shapes at the resolution H.264's 4:2:0 chroma keeps (blue on black
    is nearly all chroma, so its edges are blurred at full resolution)."""
    h, w = (x_HW.shape[0] // 2) * 2, (x_HW.shape[1] // 2) * 2
    return x_HW[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def classify(frame_HWC: np.ndarray, mask_HW: np.ndarray, bg_rgb: np.ndarray) -> str | None:
    """Shape class whose template (same area and centroid) best matches the frame's coverage."""
    if mask_HW.sum() < MIN_AREA or frame_HWC.shape[0] != frame_HWC.shape[1]:
        return None
    fg = np.median(np.asarray(frame_HWC, np.float32)[mask_HW], axis=0)
    cover = coverage(frame_HWC, bg_rgb, fg)
    errors = {s: float(np.abs(_pool2(_template(s, cover)) - _pool2(cover)).sum()) for s in shapes.SHAPES}
    return min(errors, key=errors.get)


def _majority(values: Sequence) -> object:
    values = [v for v in values if v is not None]
    return collections.Counter(values).most_common(1)[0][0] if values else None


def direction_of(centers: Sequence[tuple[float, float] | None]) -> tuple[str | None, float]:
    """Direction name of a least-squares line through the centroid track, and its length in pixels."""
    t = np.asarray([i for i, c in enumerate(centers) if c is not None], np.float32)
    if len(t) < 2:
        return None, 0.0
    xy = np.asarray([c for c in centers if c is not None], np.float32)
    slope = np.polyfit(t, xy, 1)[0]  # (2,) pixels per frame
    shift = slope * (len(centers) - 1)
    length = float(np.linalg.norm(shift))
    if length < MIN_SHIFT:
        return None, length
    names = list(shapes.DIRECTIONS)
    units = np.asarray([shapes.DIRECTIONS[n] for n in names], np.float32)
    units /= np.linalg.norm(units, axis=-1, keepdims=True)
    return names[int(np.argmax(units @ (shift / length)))], length


def is_consistent(present: float, area_cv: float, color_agreement: float) -> bool:
    """The consistency test: the shape in every frame, its area steady (CV < 0.25), one colour throughout."""
    return bool(present == 1.0 and area_cv < 0.25 and color_agreement == 1.0)


def nearest_name(rgb: np.ndarray, palette: Mapping[str, tuple[int, int, int]]) -> str:
    """Name of the palette colour nearest to `rgb` (uint8 or float in [0, 255])."""
    names = list(palette)
    dist = np.linalg.norm(np.asarray([palette[n] for n in names], np.float32) - np.asarray(rgb, np.float32), axis=-1)
    return names[int(np.argmin(dist))]


def analyse_frame(frame_HWC: np.ndarray) -> dict:
    """One uint8 frame -> `background`, `color`, `shape`, `center` (x, y pixels), `area`, `brightness`.

    `color`, `shape` and `center` are None when fewer than MIN_AREA pixels are far from the background.
    """
    f = np.asarray(frame_HWC)
    mask, bg = shape_mask(f)
    reading = {
        "background": nearest_name(bg, shapes.BACKGROUNDS),
        "color": None,
        "shape": None,
        "center": None,
        "area": int(mask.sum()),
        "brightness": float(np.mean(bg)),
        "soft_center": None,
    }
    if mask.sum() >= MIN_AREA:
        ys, xs = np.nonzero(mask)
        fg = np.median(f.astype(np.float32)[mask], axis=0)
        reading["color"] = nearest_name(fg, shapes.COLORS)
        reading["shape"] = classify(f, mask, bg)
        reading["center"] = (float(xs.mean()), float(ys.mean()))
        reading["soft_center"] = soft_center(f, mask, bg, fg)
    return reading


def soft_center(frame_HWC: np.ndarray, mask_HW: np.ndarray, bg_rgb: np.ndarray, fg_rgb: np.ndarray) -> tuple:
    """Coverage-weighted centroid (x, y) over the shape's pixels and their 1-pixel ring: sub-pixel, so
    a shape moving a fraction of a pixel per frame (I's 16 fps) moves its centre smoothly, where the
    thresholded mask's centre moves in steps."""
    ring = mask_HW.copy()
    for axis in (0, 1):
        for shift in (1, -1):
            ring |= np.roll(mask_HW, shift, axis)
    cover = coverage(frame_HWC, bg_rgb, fg_rgb) * ring
    ys, xs = np.mgrid[: cover.shape[0], : cover.shape[1]]
    total = max(float(cover.sum()), 1e-6)
    return float((cover * xs).sum() / total), float((cover * ys).sum() / total)


def center_steps(centers: Sequence[tuple[float, float] | None]) -> dict[int, float]:
    """{t: distance (px) the centre moves from frame t to t + 1}, for the t where both frames have a shape."""
    return {
        t: float(np.hypot(b[0] - a[0], b[1] - a[1]))
        for t, (a, b) in enumerate(zip(centers[:-1], centers[1:]))
        if a is not None and b is not None
    }


def jump_ratio(centers: Sequence[tuple[float, float] | None]) -> tuple[float, int | None]:
    """(largest step of the centre between consecutive frames over the median step (1 for even motion),
    the frame the largest step starts from); frames without a shape break the track (NaN, None with
    fewer than two steps)."""
    steps = center_steps(centers)
    if len(steps) < 2:
        return float("nan"), None
    worst = max(steps, key=steps.get)
    return steps[worst] / max(float(np.median(list(steps.values()))), MIN_STEP), worst


def analyse_video(frames_THWC: np.ndarray) -> dict:
    """One uint8 video (T, H, W, 3) -> what it shows.

    Keys: `background`, `color`, `shape` (read on frame 0, the keyframe),
    `direction` (centroid track over all frames, None if static), `shift_px`,
    and consistency: `present` (fraction of frames with a shape), `area_cv`
    (std / mean of the shape's area), `color_agreement` / `shape_agreement`
    (fraction of frames agreeing with frame 0), `consistent` (`is_consistent`), and smoothness:
    `jump_ratio`, `jump_frame` (`jump_ratio` of the sub-pixel centres; above JUMP_LIMIT the video jumps),
    `median_step_px` (the median step the ratio divides by, before MIN_STEP; NaN with fewer than two steps).
    """
    frames = np.asarray(frames_THWC)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video must be (T, H, W, 3) uint8, got shape {frames.shape}")
    per = [analyse_frame(f) for f in frames]
    key = per[0]
    steps = list(center_steps([p["soft_center"] for p in per]).values())
    direction, shift = direction_of([p["center"] for p in per])
    areas = np.asarray([p["area"] for p in per], np.float32)
    present = float(np.mean([p["center"] is not None for p in per]))
    area_cv = float(areas.std() / areas.mean()) if areas.mean() > 0 else float("inf")
    color_agree = float(np.mean([p["color"] == key["color"] for p in per])) if key["color"] else 0.0
    shape_agree = float(np.mean([p["shape"] == key["shape"] for p in per])) if key["shape"] else 0.0
    return {
        "background": key["background"],
        "color": key["color"],
        "shape": key["shape"],
        "background_video": _majority([p["background"] for p in per]),
        "background_brightness": key["brightness"],  # mean of the median border colour, 0..255
        "start_center": key["center"],
        "frame_size": (int(frames.shape[2]), int(frames.shape[1])),
        "direction": direction,
        "shift_px": shift,
        "present": present,
        "area_cv": area_cv,
        "color_agreement": color_agree,
        "shape_agreement": shape_agree,
        "consistent": is_consistent(present, area_cv, color_agree),
        **dict(zip(("jump_ratio", "jump_frame"), jump_ratio([p["soft_center"] for p in per]))),
        "median_step_px": float(np.median(steps)) if len(steps) >= 2 else float("nan"),
    }


def score(reading: Mapping, wanted: Mapping) -> dict[str, bool]:
    """Per attribute: does the reading match the wanted attributes (a `ShapeAttrs` dict)?"""
    return {a: reading.get(a) == wanted[a] for a in ATTRIBUTES}


def start_side(reading: Mapping, direction: str) -> list[bool]:
    """Per axis the prompted `direction` moves along: is the keyframe's shape on the side it moves away
    from (left of the centre for "right", ...)? A dataset clip starts there (it crosses at most its free
    path and stays in the frame), so a keyframe on the other side leaves too little room for the motion.
    No shape in the keyframe counts as wrong on every axis."""
    center = reading.get("start_center")
    wanted = shapes.DIRECTIONS[direction]
    if center is None:
        return [False for d in wanted if d]
    mid = [(n - 1) / 2 for n in reading["frame_size"]]
    return [(c - m) * d < 0 for c, m, d in zip(center, mid, wanted) if d]


def summarise(readings: Sequence[Mapping], wanted: Sequence[Mapping]) -> dict:
    """Accuracy per attribute, all-correct rate and consistency statistics over a set of videos."""
    if len(readings) != len(wanted) or not readings:
        raise ValueError(
            f"need equal, non-zero numbers of readings and wanted attributes, got {len(readings)} and {len(wanted)}"
        )
    scores = [score(r, w) for r, w in zip(readings, wanted)]
    out = {f"{a}_accuracy": float(np.mean([s[a] for s in scores])) for a in ATTRIBUTES}
    out["all_correct"] = float(np.mean([all(s.values()) for s in scores]))
    sides = [ok for r, w in zip(readings, wanted) for ok in start_side(r, w["direction"])]
    out["start_side_accuracy"] = float(np.mean(sides))  # chance 0.5
    out["consistent_fraction"] = float(np.mean([r["consistent"] for r in readings]))
    finite_cv = [r["area_cv"] for r in readings if np.isfinite(r["area_cv"])]
    out["mean_area_cv"] = float(np.mean(finite_cv)) if finite_cv else float("inf")
    out["mean_color_agreement"] = float(np.mean([r["color_agreement"] for r in readings]))
    if all("jump_ratio" in r for r in readings):
        ratios = np.asarray([r["jump_ratio"] for r in readings], np.float64)
        out["jumpy_fraction"] = float(np.mean(ratios > JUMP_LIMIT))  # NaN (no track) is not a jump
        out["median_jump_ratio"] = float(np.nanmedian(ratios)) if np.isfinite(ratios).any() else float("nan")
    for bg in ("black", "white"):  # the zero-terminal-SNR ablation's measure (SPEC, Lin et al. 2023)
        want = float(np.mean(shapes.BACKGROUNDS[bg]))
        errs = [abs(r["background_brightness"] - want) for r, w in zip(readings, wanted) if w["background"] == bg]
        out[f"{bg}_background_brightness_error"] = float(np.mean(errs)) if errs else float("nan")
    out["count"] = len(readings)
    return out
