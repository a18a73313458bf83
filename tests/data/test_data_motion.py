"""Motion score from H.264 motion vectors: static < slow < fast; windowed minimum; HQ selection."""

import json

import numpy as np
import pytest

from emu_jax.data import motion, video_io
from emu_jax.demo import shapes


def _video(speed: float, direction: str = "right") -> bytes:
    start = {"right": (0.0, 0.5), "down": (0.5, 0.0)}[direction]
    attrs = shapes.ShapeAttrs("square", "red", "black", direction, speed, 0.3, *start)
    return video_io.encode_mp4(shapes.render_clip(attrs, 24, 32), 8)


@pytest.fixture(scope="module")
def videos():
    return {"static": _video(0.0), "slow": _video(0.2), "fast": _video(0.9), "fast_down": _video(0.9, "down")}


def test_score_orders_static_slow_fast(videos):
    s = {k: motion.motion_score(v) for k, v in videos.items()}
    assert s["static"] == 0.0
    assert 0.0 < s["slow"] < s["fast"]
    assert s["fast_down"] > s["slow"]


def test_intra_frames_are_nan_and_vectors_scale_with_speed(videos):
    e_fast, e_slow = motion.frame_motion_energy(videos["fast"]), motion.frame_motion_energy(videos["slow"])
    assert np.isnan(e_fast[0]) and len(e_fast) == 24
    assert np.nanmean(e_fast) > 4 * np.nanmean(e_slow)


def test_windowed_min_takes_the_quietest_window():
    e = np.r_[np.full(20, 4.0), np.zeros(11), np.full(20, 4.0)]
    assert motion.windowed_min(e, 5) == 0.0
    e[25] = 11.0  # one busy frame inside the quiet stretch lifts that window's mean to 1
    assert motion.windowed_min(e, 5) == pytest.approx(1.0)
    assert motion.windowed_min(np.array([np.nan, 2.0, 4.0]), 5) == pytest.approx(3.0)
    assert np.isnan(motion.windowed_min(np.full(30, np.nan)))


def test_select_applies_only_supplied_thresholds(videos, tmp_path):
    items = [(i, k, v) for i, (k, v) in enumerate(videos.items())]
    out = motion.select(items, motion_threshold=0.5)
    keys = [s["key"] for s in out["selected"]]
    assert "static" not in keys and "fast" in keys and out["rejected"]["motion"] >= 1
    clip_file = tmp_path / "clip.jsonl"
    clip_file.write_text("".join(json.dumps({"path": k, "score": 0.3 if k == "fast" else 0.1}) + "\n" for k in videos))
    out = motion.select(items, motion_threshold=0.5, clip_scores=motion.read_scores(clip_file))
    assert [s["key"] for s in out["selected"]] == ["fast"] and out["rejected"]["clip"] >= 1
    assert out["thresholds"]["aesthetic"] is None


def test_unreadable_and_no_vectors_are_counted():
    out = motion.select([(0, "junk", b"garbage" * 50)])
    assert out["rejected"]["unreadable"] == 1 and not out["selected"]
