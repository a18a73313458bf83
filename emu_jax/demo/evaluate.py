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
from typing import Sequence

import numpy as np

from emu_jax import conditioning
from emu_jax.data import clips
from emu_jax.demo import analyse, shapes
from emu_jax.demo.word_probe import model_contexts, model_loss, text_sensitivity, word_use

HELD_OUT_SPLIT = 2  # the dataset builder uses 0 (train) and 1 (test)
# Speed of the diagnostics' clips when they do not start on their path: that of the curriculum runs' F data
# (docs/demo.md, "The direction curriculum"), and within what every start mode draws at the dataset's sizes.
OFF_PATH_SPEED = (0.4, 0.4)


def default_checkpoint() -> str:
    """The bundled demo model folder (F, with I in `interp/`)."""
    return str(importlib.resources.files("emu_jax") / "assets" / "demo_model")


def prompt_set(num_prompts: int, seed: int) -> list[shapes.ShapeAttrs]:
    """Held-out attribute draws, one per prompt (reproducible from `seed`)."""
    return [shapes.sample_attributes(np.random.default_rng([seed, HELD_OUT_SPLIT, i])) for i in range(num_prompts)]


def real_clips(
    num_clips: int,
    seed: int,
    *,
    resolution: int,
    num_frames: int,
    fps: float,
    source_frames: int = 40,
    source_fps: float = 16.0,
    speed_range: tuple[float, float] | None = None,
    start: str = "path",
    look: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[shapes.ShapeAttrs]]:
    """Held-out dataset clips: `make_shapes_example` (render + H.264) decoded by the training pipeline's
    `load_clip` at the given frame count and rate (centred clip) -> (videos (N, T, H, W, 3) in [-1, 1],
    their attributes). `speed_range`, `start` and `look` as the dataset's build parameters (default
    speeds: the dataset's for `path` starts, OFF_PATH_SPEED for the others)."""
    from emu_jax.demo.dataset import make_shapes_example  # TFDS, only for real clips

    videos, attrs = [], []
    for i in range(num_clips):
        ex = make_shapes_example(
            np.random.default_rng([seed, HELD_OUT_SPLIT + 1, i]),
            key=str(i),
            resolution=resolution,
            num_frames=source_frames,
            fps=source_fps,
            speed_range=speed_range or (shapes.SPEED_RANGE if start == "path" else OFF_PATH_SPEED),
            start=start,
            look=look,
        )
        videos.append(
            clips.load_clip(
                ex["video"],
                src_fps=source_fps,
                src_num_frames=source_frames,
                num_frames=num_frames,
                fps=fps,
                resolution=resolution,
            )
        )
        attrs.append(shapes.ShapeAttrs.from_dict(ex))
    return np.stack(videos) if videos else np.zeros((0,)), attrs


def ceiling(
    num_clips: int,
    seed: int,
    *,
    resolution: int,
    num_frames: int,
    fps: float,
    start: str = "path",
    autoencode=None,
) -> dict:
    """Analyser accuracy on real clips (`real_clips`, starting as `start` says): what a perfect model of
    those clips would score. With `autoencode` (videos -> videos in [-1, 1]), also `through_vae`: the same
    clips after it, what a latent model that reproduced their latents exactly would score."""
    if not num_clips:
        return {}
    videos, attrs = real_clips(num_clips, seed, resolution=resolution, num_frames=num_frames, fps=fps, start=start)
    wanted = [a.to_dict() for a in attrs]
    read = lambda vs: analyse.summarise([analyse.analyse_video(clips.from_unit_range(v)) for v in vs], wanted)  # noqa: E731
    return read(videos) | ({"through_vae": read(autoencode(videos))} if autoencode else {})


def vae_round_trip(model, batch: int = 16):
    """videos (N, T, H, W, 3) in [-1, 1] -> the same after `model`'s VAE (encoder mean, decoder), `batch`
    clips per call."""
    import jax

    fn = jax.jit(lambda p, x: model.model.decode_video(p, model.model.encode_video(p, x)))
    params = {"vae": model.params["vae"]}
    return lambda videos: np.concatenate(
        [np.asarray(fn(params, videos[i : i + batch]), np.float32) for i in range(0, len(videos), batch)]
    )


def clip_format(pipe, *, interp: bool = False) -> dict:
    """`real_clips`' resolution, num_frames and fps: of F's videos, or (`interp`) of I's output."""
    cfg = pipe.main.model.config
    if not interp:
        return {"resolution": cfg.resolution, "num_frames": cfg.num_frames, "fps": float(cfg.fps)}
    lay = pipe.interp.layout
    return {"resolution": cfg.resolution, "num_frames": lay.num_slots, "fps": float(cfg.fps) * lay.factor}


def interp_ceiling(pipe, num_clips: int, seed: int, start: str = "path") -> dict:
    """`ceiling` at the interpolation model's output length and frame rate, also through F's VAE (I's
    latents are decoded by it): the 16 fps video's jumps are I's own only above that."""
    return ceiling(num_clips, seed, **clip_format(pipe, interp=True), start=start, autoencode=vae_round_trip(pipe.main))


def given_frame_error(samples: Sequence, layout) -> dict:
    """How closely I's output keeps F's frames at their slots: pixel RMS (0-255) between each F frame
    and its slot in the interpolated video, next to the RMS between consecutive F frames (the motion
    the interpolation has to fill in; an output that ignored its inputs would be off by about that)."""
    pairs = [
        (s.video.astype(np.float32), s.interpolated.astype(np.float32))
        for s in samples
        if s.video is not None and s.interpolated is not None
    ]
    if not pairs:
        return {}
    pos = conditioning.output_given_positions(pairs[0][0].shape[0], layout)
    rms = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    return {
        "interp_given_rms": float(np.mean([rms(v, i[pos]) for v, i in pairs])),
        "video_interframe_rms": float(np.mean([rms(v[1:], v[:-1]) for v, _ in pairs])),
    }


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
        readings.append(
            {
                **vid,
                "background": key["background"],
                "color": key["color"],
                "shape": key["shape"],
                "background_brightness": key["background_brightness"],
                "start_center": key["start_center"],
                "frame_size": key["frame_size"],
                "video_color": vid["color"],
                "video_shape": vid["shape"],
            }
        )
    summary = analyse.summarise(readings, [w.to_dict() for w in wanted])
    summary["video_frame0_color_accuracy"] = float(
        np.mean([r["video_color"] == w.color for r, w in zip(readings, wanted)])
    )
    summary["video_frame0_shape_accuracy"] = float(
        np.mean([r["video_shape"] == w.shape for r, w in zip(readings, wanted)])
    )
    if all(s.video is not None and s.interpolated is not None for s in samples):
        # F's own 8 frames too, so one interpolated run compares the two stages on the same prompts.
        f_reads = [analyse.analyse_video(s.video) for s in samples]
        f_right = [r["direction"] == w.direction for r, w in zip(f_reads, wanted)]
        key_right = [
            all(r[a] == getattr(w, a) for a in ("background", "color", "shape")) for r, w in zip(readings, wanted)
        ]
        f_jumps = [r["jump_ratio"] > analyse.JUMP_LIMIT for r in f_reads]
        summary["f_video_direction_accuracy"] = float(np.mean(f_right))
        summary["f_video_all_correct"] = float(np.mean([k and d for k, d in zip(key_right, f_right)]))
        summary["f_video_consistent_fraction"] = float(np.mean([r["consistent"] for r in f_reads]))
        summary["f_video_jumpy_fraction"] = float(np.mean(f_jumps))
        # The smoothness test: a 16 fps video may only jump where F's own video already does.
        summary["jumpy_not_in_f"] = int(
            sum(r["jump_ratio"] > analyse.JUMP_LIMIT and not fj for r, fj in zip(readings, f_jumps))
        )
        for r, f in zip(readings, f_reads):
            r.update({"f_direction": f["direction"], "f_consistent": f["consistent"], "f_jump_ratio": f["jump_ratio"]})
    if layout is not None:
        summary.update(given_frame_error(samples, layout))
    return summary, readings


def given_first_frame(pipe, num_clips: int, seed: int, start: str = "path", look: Sequence[str] | None = None) -> dict:
    """The video stage alone: direction accuracy and consistency of `pipe`'s videos when each is given a
    held-out real clip's first frame and caption, so a wrong keyframe is ruled out as the cause.
    `start`: where those clips start (`shapes.START_MODES`); with `free` the first frame does not tell
    the direction, so only a model that reads the word scores above chance; `look` fixes their colour,
    shape and background."""
    videos, attrs = real_clips(num_clips, seed, **clip_format(pipe), start=start, look=look)
    first = clips.from_unit_range(videos[:, 0])
    # Direction is read on F's video, so a loaded interpolation model is not run (it costs ~5x F).
    samples = [
        s for b in pipe.run([shapes.caption(a) for a in attrs], seed=seed, image=first, interpolate=False) for s in b
    ]
    reads = [analyse.analyse_video(s.video) for s in samples]
    return {
        "given_first_frame_direction_accuracy": float(
            np.mean([r["direction"] == a.direction for r, a in zip(reads, attrs)])
        ),
        "given_first_frame_consistent_fraction": float(np.mean([r["consistent"] for r in reads])),
    }


def interp_given_real(pipe, num_clips: int, seed: int, start: str = "path") -> dict:
    """The interpolation stage alone: I given the 8 frames of held-out real 16 fps clips that sit at its
    given slots, with their captions; the 37 frames it makes are read as the 16 fps video is (real clips:
    `interp_ceiling`), so what I adds or loses is measured apart from F's video."""
    videos, attrs = real_clips(num_clips, seed, **clip_format(pipe, interp=True), start=start)
    given = clips.from_unit_range(videos[:, pipe.interp.layout.given_slots])
    samples = [s for b in pipe.run([shapes.caption(a) for a in attrs], seed=seed, video=given) for s in b]
    reads = [analyse.analyse_video(s.interpolated) for s in samples]
    jumps = np.asarray([r["jump_ratio"] for r in reads], np.float64)
    return {
        "interp_given_real_direction_accuracy": float(
            np.mean([r["direction"] == a.direction for r, a in zip(reads, attrs)])
        ),
        "interp_given_real_consistent_fraction": float(np.mean([r["consistent"] for r in reads])),
        "interp_given_real_jumpy_fraction": float(np.mean(jumps > analyse.JUMP_LIMIT)),
    }


def run(
    checkpoint: str | None = None,
    *,
    num_prompts: int = 200,
    seed: int = 1234,
    batch_size: int = 25,
    ceiling_clips: int = 200,
    num_steps: int | None = None,
    use_interp: bool = False,
    interp_checkpoint: str | None = None,
    interp_num_steps: int | None = None,
    word_use_clips: int = 32,
    first_frame_clips: int = 32,
    interp_real_clips: int = 32,
    clips_start: str = "path",
    progress: bool = False,
) -> dict:
    """Sample `num_prompts` held-out prompts from `checkpoint` and report per-attribute accuracy, plus
    `word_use` of the main model on `word_use_clips` real clips and, for a video checkpoint, the video
    stage given `first_frame_clips` real first frames and I given `interp_real_clips` real clips' frames
    (0: skip any); `interp_checkpoint`: model I
    (default: `checkpoint`/interp); `interp_num_steps`: I's sampling
    steps (default: I's checkpoint's, else `num_steps`); `clips_start` is where every
    real clip (diagnostics and ceilings) starts (`shapes.START_MODES`; `free` clips move at the curriculum's
    speed, as the shipped model's training clips do). `progress`:
    print each phase and the sampler's steps to stderr (a 200-prompt run takes most of an hour on a CPU)."""
    from emu_jax.sampling import pipeline

    shapes.check_start(clips_start, OFF_PATH_SPEED)  # before anything loads
    path = checkpoint or default_checkpoint()
    wanted = prompt_set(num_prompts, seed)
    prompts = [shapes.caption(a) for a in wanted]
    overrides = {"num_steps": num_steps} if num_steps else None
    pipe = pipeline.Pipeline.from_checkpoint(
        path,
        use_interp=use_interp,
        interp_checkpoint=interp_checkpoint,
        overrides=overrides,
        interp_overrides={"num_steps": interp_num_steps} if interp_num_steps else None,
        batch_size=min(batch_size, num_prompts),
        progress=progress,
    )
    pipe.progress.note(f"eval: sampling {num_prompts} held-out prompts in batches of {pipe.batch_size}")
    t0 = time.perf_counter()
    samples = [s for batch in pipe.run(prompts, seed=seed) for s in batch]
    seconds = time.perf_counter() - t0
    summary, readings = score_samples(samples, wanted, pipe.interp.layout if pipe.interp else None)
    summary["text_sensitivity"] = text_sensitivity(lambda p: model_contexts(pipe.main, p), wanted)
    if word_use_clips:
        pipe.progress.note(f"eval: word use on {word_use_clips} real clips")
        videos, clip_attrs = real_clips(word_use_clips, seed, **clip_format(pipe), start=clips_start)
        summary["word_use"] = word_use(model_loss(pipe.main, seed=seed), videos, clip_attrs)
    if first_frame_clips and pipe.main.task == "t2v":
        pipe.progress.note(f"eval: the video stage given {first_frame_clips} real first frames")
        summary.update(given_first_frame(pipe, first_frame_clips, seed, start=clips_start))
    if interp_real_clips and pipe.interp is not None:
        pipe.progress.note(f"eval: the interpolation stage given {interp_real_clips} real clips' frames")
        summary.update(interp_given_real(pipe, interp_real_clips, seed, start=clips_start))
    return {
        "checkpoint": path,
        "seed": seed,
        "num_prompts": num_prompts,
        "num_steps": pipe.settings.num_steps,
        "interpolation": pipe.interp is not None,
        # Which I made the 16 fps video: candidates are scored against the same F by path alone.
        "interp_checkpoint": pipe.interp.path if pipe.interp is not None else None,
        "interp_run": pipe.interp.meta.get("run") if pipe.interp is not None else None,
        "interp_num_steps": pipe.interp_settings.num_steps if pipe.interp is not None else None,
        "sampling_seconds": round(seconds, 1),
        "clips_start": clips_start,
        "model": summary,
        "ceiling": ceiling(ceiling_clips, seed, **clip_format(pipe), start=clips_start),
        # The same real clips at I's frame count and rate: what a perfect 16 fps video would score.
        **(
            {"interp_ceiling": interp_ceiling(pipe, ceiling_clips, seed, start=clips_start)}
            if pipe.interp is not None
            else {}
        ),
        # The consistency parts too, so a report says why a video failed the test.
        "per_prompt": [
            {
                "prompt": p,
                **{
                    k: r[k]
                    for k in (
                        "background",
                        "color",
                        "shape",
                        "direction",
                        "shift_px",
                        "present",
                        "area_cv",
                        "color_agreement",
                        "consistent",
                        "jump_ratio",
                        "jump_frame",
                        "median_step_px",
                    )
                },
                **{k: r[k] for k in ("f_direction", "f_consistent", "f_jump_ratio") if k in r},
            }
            for p, r in zip(prompts, readings)
        ],
    }
