"""`emu-video demo eval`: text faithfulness of a moving-shapes model, read back automatically.

Prompts come from held-out attribute draws (`np.random.default_rng([seed, 2, i])`;
the dataset's train / test splits use split ids 0 / 1). Each prompt is sampled
with the sampling pipeline's Python API in batches, then `analyse` reads the
keyframe (background, shape colour and class) and the video (motion direction
from the centroid track, frame consistency) and scores them against the
prompt. The same analyser runs on real dataset clips (rendered, H.264-encoded
and decoded exactly as the dataset does) as its own ceiling check.
"""

from __future__ import annotations

import importlib.resources
import time
import types
from typing import Sequence

import numpy as np

from emu_jax import conditioning
from emu_jax.data import clips, shapes
from emu_jax.demo import analyse

HELD_OUT_SPLIT = 2  # the dataset builder uses 0 (train) and 1 (test)


def default_checkpoint() -> str:
    """The bundled demo model folder (F, with I in `interp/`)."""
    return str(importlib.resources.files("emu_jax") / "assets" / "demo_model")


def prompt_set(num_prompts: int, seed: int) -> list[shapes.ShapeAttrs]:
    """Held-out attribute draws, one per prompt (reproducible from `seed`)."""
    return [shapes.sample_attributes(np.random.default_rng([seed, HELD_OUT_SPLIT, i])) for i in range(num_prompts)]


def ceiling(num_clips: int, seed: int, *, resolution: int, num_frames: int, fps: float,
            source_frames: int = 40, source_fps: float = 16.0) -> dict:
    """Analyser accuracy on real dataset clips: `make_shapes_example` (render + H.264) decoded by the
    training pipeline's `load_clip` at the evaluated clip's frame count and rate (centred clip)."""
    if not num_clips:
        return {}
    from emu_jax.data import builders  # TFDS, only for the ceiling

    attrs, readings = [], []
    for i in range(num_clips):
        ex = builders.make_shapes_example(np.random.default_rng([seed, HELD_OUT_SPLIT + 1, i]), key=str(i),
                                          resolution=resolution, num_frames=source_frames, fps=source_fps)
        video = clips.load_clip(ex["video"], src_fps=source_fps, src_num_frames=source_frames,
                                num_frames=num_frames, fps=fps, resolution=resolution)
        readings.append(analyse.analyse_video(clips.from_unit_range(video)))
        attrs.append(shapes.ShapeAttrs.from_dict(ex).to_dict())
    return analyse.summarise(readings, attrs)


def given_frame_error(samples: Sequence, layout) -> dict:
    """How closely I's output keeps F's frames at their slots: pixel RMS (0-255) between each F frame
    and its slot in the interpolated video, next to the RMS between consecutive F frames (the motion
    the interpolation has to fill in; an output that ignored its inputs would be off by about that)."""
    pairs = [(s.video.astype(np.float32), s.interpolated.astype(np.float32)) for s in samples
             if s.video is not None and s.interpolated is not None]
    if not pairs:
        return {}
    pos = conditioning.output_given_positions(pairs[0][0].shape[0], layout)
    rms = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    return {"interp_given_rms": float(np.mean([rms(v, i[pos]) for v, i in pairs])),
            "video_interframe_rms": float(np.mean([rms(v[1:], v[:-1]) for v, _ in pairs]))}


ATTRIBUTE_WORDS = {"color": tuple(shapes.COLORS), "shape": shapes.SHAPES, "direction": tuple(shapes.DIRECTIONS),
                   "background": tuple(shapes.BACKGROUNDS)}


def text_sensitivity(encode, wanted: Sequence[shapes.ShapeAttrs]) -> dict:
    """How much the text contexts change when one attribute's word is swapped, per attribute.

    `encode(prompts) -> (B, ...)` contexts. For each prompt and attribute, the
    word is replaced by the next allowed value; the score is the mean of
    |ctx(swapped) - ctx| / |ctx| over prompts. An attribute near 0 is one the
    text encoder has erased: no later layer can follow it (this is how the
    demo's collapsed direction words were found, docs/demo.md).
    """
    base = np.asarray(encode([shapes.caption(w) for w in wanted]), np.float32)
    norm = np.linalg.norm(base.reshape(len(wanted), -1), axis=-1)
    out = {}
    for field, words in ATTRIBUTE_WORDS.items():
        # caption() only reads the attribute words, so a namespace skips ShapeAttrs' path checks.
        swapped = [types.SimpleNamespace(**{**w.to_dict(), field: words[(words.index(getattr(w, field)) + 1)
                                                                         % len(words)]}) for w in wanted]
        ctx = np.asarray(encode([shapes.caption(w) for w in swapped]), np.float32)
        out[field] = float(np.mean(np.linalg.norm((ctx - base).reshape(len(wanted), -1), axis=-1) / norm))
    return out


def model_contexts(loaded, prompts: Sequence[str]) -> np.ndarray:
    """Every text encoder's per-token contexts for `prompts`, flattened and joined -> (B, N)."""
    m, toks = loaded.model, loaded.model.tokenize_all(list(prompts))
    return np.concatenate([np.asarray(m.encode_text(loaded.params, toks[f"text_ids_{i}"], toks[f"text_mask_{i}"], i)
                                      ).reshape(len(prompts), -1) for i in range(len(m.config.text))], axis=1)


def score_samples(samples: Sequence, wanted: Sequence[shapes.ShapeAttrs], layout=None) -> tuple[dict, list[dict]]:
    """Keyframe attributes from `sample.keyframe`, motion and consistency from the final video
    (interpolated if present, else F's video; a t2i checkpoint has only the keyframe); with
    interpolation, F's video is also scored (`f_video_*`). With I's slot `layout`, also
    `given_frame_error`."""
    readings = []
    for s in samples:
        key = analyse.analyse_video(s.keyframe[None])
        final = next(v for v in (s.interpolated, s.video, s.keyframe[None]) if v is not None)  # t2i: keyframe
        vid = analyse.analyse_video(final)
        readings.append({**vid, "background": key["background"], "color": key["color"], "shape": key["shape"],
                         "background_brightness": key["background_brightness"],
                         "video_color": vid["color"], "video_shape": vid["shape"]})
    summary = analyse.summarise(readings, [w.to_dict() for w in wanted])
    summary["video_frame0_color_accuracy"] = float(np.mean([r["video_color"] == w.color
                                                            for r, w in zip(readings, wanted)]))
    summary["video_frame0_shape_accuracy"] = float(np.mean([r["video_shape"] == w.shape
                                                            for r, w in zip(readings, wanted)]))
    if all(s.video is not None and s.interpolated is not None for s in samples):
        # F's own 8 frames too, so one interpolated run reports both stages' motion.
        f_reads = [analyse.analyse_video(s.video) for s in samples]
        summary["f_video_direction_accuracy"] = float(np.mean([r["direction"] == w.direction
                                                               for r, w in zip(f_reads, wanted)]))
        summary["f_video_consistent_fraction"] = float(np.mean([r["consistent"] for r in f_reads]))
    if layout is not None:
        summary.update(given_frame_error(samples, layout))
    return summary, readings


def run(checkpoint: str | None = None, *, num_prompts: int = 200, seed: int = 1234, batch_size: int = 25,
        ceiling_clips: int = 200, num_steps: int | None = None, use_interp: bool = False) -> dict:
    """Sample `num_prompts` held-out prompts from `checkpoint` and report per-attribute accuracy."""
    from emu_jax import sampling

    path = checkpoint or default_checkpoint()
    wanted = prompt_set(num_prompts, seed)
    prompts = [shapes.caption(a) for a in wanted]
    overrides = {"num_steps": num_steps} if num_steps else None
    pipe = sampling.Pipeline.from_checkpoint(path, use_interp=use_interp, overrides=overrides,
                                             batch_size=min(batch_size, num_prompts), progress=False)
    cfg = pipe.main.model.config
    t0 = time.perf_counter()
    samples = [s for batch in pipe.run(prompts, seed=seed) for s in batch]
    seconds = time.perf_counter() - t0
    summary, readings = score_samples(samples, wanted, pipe.interp.layout if pipe.interp else None)
    summary["text_sensitivity"] = text_sensitivity(lambda p: model_contexts(pipe.main, p), wanted)
    return {
        "checkpoint": path, "seed": seed, "num_prompts": num_prompts, "num_steps": pipe.settings.num_steps,
        "interpolation": pipe.interp is not None, "sampling_seconds": round(seconds, 1),
        "model": summary,
        "ceiling": ceiling(ceiling_clips, seed, resolution=cfg.resolution, num_frames=cfg.num_frames,
                           fps=float(cfg.fps)),
        "per_prompt": [{"prompt": p, **{k: r[k] for k in ("background", "color", "shape", "direction",
                                                           "shift_px", "area_cv", "consistent")}}
                       for p, r in zip(prompts, readings)],
    }


TARGETS = {"color_accuracy": 0.90, "shape_accuracy": 0.90, "direction_accuracy": 0.80, "background_accuracy": 0.95}


def format_report(report: dict) -> str:
    """A short table: model vs ceiling per attribute, with the issue's targets."""
    m, c = report["model"], report.get("ceiling") or {}
    lines = [f"checkpoint {report['checkpoint']}  prompts {report['num_prompts']} (seed {report['seed']}, "
             f"{report['num_steps']} steps, interpolation {'on' if report['interpolation'] else 'off'}, "
             f"{report['sampling_seconds']} s sampling)",
             f"{'attribute':<34}{'model':>8}{'ceiling':>9}{'target':>8}"]
    for key in ("background_accuracy", "color_accuracy", "shape_accuracy", "direction_accuracy", "all_correct",
                "consistent_fraction", "f_video_direction_accuracy", "f_video_consistent_fraction", "mean_area_cv",
                "video_frame0_color_accuracy", "video_frame0_shape_accuracy",
                "black_background_brightness_error", "white_background_brightness_error",
                "interp_given_rms", "video_interframe_rms"):
        if key not in m:
            continue
        target = f"{TARGETS[key]:.2f}" if key in TARGETS else ""
        ceil = f"{c[key]:.3f}" if key in c else ""
        lines.append(f"{key:<34}{m[key]:>8.3f}{ceil:>9}{target:>8}")
    for field, value in (m.get("text_sensitivity") or {}).items():
        lines.append(f"{'text_sensitivity.' + field:<34}{value:>8.3f}")
    return "\n".join(lines)
