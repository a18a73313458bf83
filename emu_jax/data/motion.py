"""Motion score from the motion vectors stored in a video (H.264 etc.) and the high-quality subset selection.

Emu Video's HQ fine-tuning set keeps videos whose minimum windowed motion
score (window +-5 frames) exceeds 0.5, plus CLIP and aesthetic thresholds.
The score needs no optical flow: the decoder exports the encoder's vectors.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Mapping

import av
import numpy as np

from emu_jax.data import video_io

WINDOW = 5  # frames on each side of the centre frame


def frame_motion_energy(src: video_io.Source) -> np.ndarray:
    """Mean squared motion-vector displacement (px^2) per decoded frame -> float64 (N,).

    Frames without motion vectors (intra frames) are NaN; a codec that exports
    no vectors at all (e.g. VP9) gives all-NaN.
    """
    energies, exported = [], False
    with video_io.open_container(src) as container:
        stream = video_io.video_stream(container, src)
        stream.codec_context.options = {"flags2": "+export_mvs"}
        try:
            for frame in container.decode(stream):
                mv = frame.side_data.get("MOTION_VECTORS")
                vec = None if mv is None else mv.to_ndarray()
                exported |= mv is not None
                if frame.key_frame:
                    energies.append(np.nan)
                elif vec is None or len(vec) == 0:
                    energies.append(0.0)  # an inter frame without vectors: every block skipped or intra
                else:
                    scale = np.maximum(vec["motion_scale"].astype(np.float64), 1.0)
                    dx, dy = vec["motion_x"] / scale, vec["motion_y"] / scale
                    energies.append(float(np.mean(dx * dx + dy * dy)))
        except av.error.FFmpegError as e:
            raise video_io.VideoDecodeError(f"decode failed while reading motion vectors: {e}") from e
    out = np.asarray(energies, np.float64)
    return out if exported else np.full_like(out, np.nan)


def windowed_min(energy: np.ndarray, window: int = WINDOW) -> float:
    """Minimum over frames of the mean energy in [t - window, t + window] (NaN frames ignored).

    Windows are only taken where they fit inside the video; a video shorter
    than one window is scored by its overall mean. NaN when nothing is known.
    """
    e = np.asarray(energy, np.float64)
    if e.size == 0 or np.all(np.isnan(e)):
        return float("nan")
    width = 2 * window + 1
    if e.size < width:
        return float(np.nanmean(e))
    valid = ~np.isnan(e)
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid, e, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(valid)])
    sums, counts = csum[width:] - csum[:-width], ccount[width:] - ccount[:-width]
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return float(np.nanmin(means)) if np.any(counts > 0) else float("nan")


def motion_score(src: video_io.Source, window: int = WINDOW) -> float:
    """The video's motion score: `windowed_min(frame_motion_energy(src), window)`."""
    return windowed_min(frame_motion_energy(src), window)


def read_scores(path: str | os.PathLike) -> dict[str, float]:
    """Reads a JSONL (`{"path": ..., "score": ...}` per line) or CSV (`path,score` header) score file."""
    path = os.fspath(path)
    rows: Iterable[Mapping]
    with open(path, encoding="utf-8", newline="") as f:
        if path.endswith(".csv"):
            rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    scores = {}
    for n, row in enumerate(rows, 1):
        if "path" not in row or "score" not in row:
            raise ValueError(f"{path} row {n}: needs fields 'path' and 'score', got {sorted(row)}")
        scores[str(row["path"])] = float(row["score"])
    return scores


def select(items: Iterable[tuple[int, str, bytes]], *, motion_threshold: float = 0.5,
           clip_scores: Mapping[str, float] | None = None, clip_threshold: float = 0.25,
           aesthetic_scores: Mapping[str, float] | None = None, aesthetic_threshold: float = 5.7,
           window: int = WINDOW) -> dict:
    """Scores `(index, key, encoded video)` items and keeps those passing every supplied threshold.

    CLIP and aesthetic thresholds apply only when their score mappings are
    given; a key missing from a supplied mapping counts as failing. Returns
    `{"selected": [{"index", "key", "motion", ...}], "rejected": {...counts}, "total": n}`.
    """
    selected, rejected, total = [], {"motion": 0, "no_motion_vectors": 0, "clip": 0, "aesthetic": 0,
                                     "unreadable": 0}, 0
    for index, key, data in items:
        total += 1
        try:
            score = motion_score(data, window)
        except video_io.VideoDecodeError:
            rejected["unreadable"] += 1
            continue
        if np.isnan(score):
            rejected["no_motion_vectors"] += 1
            continue
        if score <= motion_threshold:
            rejected["motion"] += 1
            continue
        entry = {"index": int(index), "key": key, "motion": round(score, 4)}
        for name, scores, threshold in (("clip", clip_scores, clip_threshold),
                                        ("aesthetic", aesthetic_scores, aesthetic_threshold)):
            if scores is not None:
                value = scores.get(key)
                if value is None or value <= threshold:
                    rejected[name] += 1
                    break
                entry[name] = value
        else:
            selected.append(entry)
    return {"selected": selected, "rejected": rejected, "total": total,
            "thresholds": {"motion": motion_threshold, "window": window,
                           "clip": clip_threshold if clip_scores is not None else None,
                           "aesthetic": aesthetic_threshold if aesthetic_scores is not None else None}}
