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


REJECT_REASONS = ("motion", "no_motion_vectors", "clip", "aesthetic", "unreadable")


def score_item(item: tuple[int, str, bytes], window: int = WINDOW) -> tuple[str, dict]:
    """`(index, key, encoded video)` -> `(key, {"index", "motion"})`, or with `"rejected"` instead of
    `"motion"` when the video cannot be read or exports no motion vectors. The per-video step of
    `select`, run here or in Beam workers."""
    index, key, data = item
    try:
        score = motion_score(data, window)
    except video_io.VideoDecodeError:
        return key, {"index": int(index), "rejected": "unreadable"}
    if np.isnan(score):
        return key, {"index": int(index), "rejected": "no_motion_vectors"}
    return key, {"index": int(index), "motion": round(score, 4)}


def decide(key: str, scored: dict, thresholds: dict, clip: float | None = None, aesthetic: float | None = None) -> dict:
    """One scored video against `thresholds` (`select`'s result["thresholds"]): its selection entry
    `{"index", "key", "motion", ...}`, or `{"index", "rejected": reason}`. A None threshold means that
    score file was not supplied; a supplied file without this key rejects it."""
    if "rejected" in scored:
        return dict(scored)
    if scored["motion"] <= thresholds["motion"]:
        return {"index": scored["index"], "rejected": "motion"}
    entry = {"index": scored["index"], "key": key, "motion": scored["motion"]}
    for name, value in (("clip", clip), ("aesthetic", aesthetic)):
        if thresholds[name] is not None:
            if value is None or value <= thresholds[name]:
                return {"index": scored["index"], "rejected": name}
            entry[name] = value
    return entry


def thresholds_of(
    *, motion_threshold: float, window: int, clip_threshold: float | None, aesthetic_threshold: float | None
) -> dict:
    return {"motion": motion_threshold, "window": window, "clip": clip_threshold, "aesthetic": aesthetic_threshold}


def summarise(decisions: Iterable[dict], thresholds: dict) -> dict:
    """`decide` results (any order) -> `{"selected" (by index), "rejected": counts, "total", "thresholds"}`."""
    selected, rejected, total = [], dict.fromkeys(REJECT_REASONS, 0), 0
    for d in decisions:
        total += 1
        if "rejected" in d:
            rejected[d["rejected"]] += 1
        else:
            selected.append(d)
    selected.sort(key=lambda e: e["index"])
    return {"selected": selected, "rejected": rejected, "total": total, "thresholds": dict(thresholds)}


def select(
    items: Iterable[tuple[int, str, bytes]],
    *,
    motion_threshold: float = 0.5,
    clip_scores: Mapping[str, float] | None = None,
    clip_threshold: float = 0.25,
    aesthetic_scores: Mapping[str, float] | None = None,
    aesthetic_threshold: float = 5.7,
    window: int = WINDOW,
) -> dict:
    """Scores `(index, key, encoded video)` items and keeps those passing every supplied threshold.

    CLIP and aesthetic thresholds apply only when their score mappings are
    given; a key missing from a supplied mapping counts as failing. Returns
    `{"selected": [{"index", "key", "motion", ...}], "rejected": {...counts}, "total": n}`.
    `motion_beam.select` computes the same in a Beam pipeline.
    """
    thresholds = thresholds_of(
        motion_threshold=motion_threshold,
        window=window,
        clip_threshold=clip_threshold if clip_scores is not None else None,
        aesthetic_threshold=aesthetic_threshold if aesthetic_scores is not None else None,
    )
    decisions = []
    for item in items:
        key, scored = score_item(item, window)
        decisions.append(
            decide(key, scored, thresholds, (clip_scores or {}).get(key), (aesthetic_scores or {}).get(key))
        )
    return summarise(decisions, thresholds)
