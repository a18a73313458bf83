"""How smooth real moving-shapes clips are at I's length and rate, by how they were stored: the floor under
`emu-video demo eval --interp`'s jump test (a step over `analyse.JUMP_LIMIT` x the clip's median step).

    JAX_PLATFORMS=cpu python benchmarks/smoothness_floor.py [--clips 200] [--start free] [--checkpoint DIR]
        [--floors PX ...] [--report REPORT.json]

The held-out clips of `evaluate.real_clips` (same seed, same draws), rendered, then read back as rendered,
as H.264 yuv420p (the dataset's encoding), as H.264 yuv444p, and as yuv420p after the checkpoint's VAE
(what decodes I's latents). Prints per row the clips over the jump limit, with the median step floored at each
of `--floors` px (the eval's floor is analyse.MIN_STEP), and the median jump ratio. `--report` adds a row for
an `emu-video demo eval --interp` report's 16 fps videos, counted at the same floors from their per-prompt
`jump_ratio` and `median_step_px`, and lists the report's videos that jump at the last floor.
"""

import argparse
import json

import numpy as np

from emu_jax.data import clips, video_io
from emu_jax.demo import analyse, evaluate, shapes


def clip_attrs(num_clips: int, seed: int, start: str) -> list[shapes.ShapeAttrs]:
    speed = shapes.SPEED_RANGE if start == "path" else evaluate.OFF_PATH_SPEED
    return [
        shapes.sample_attributes(
            np.random.default_rng([seed, evaluate.HELD_OUT_SPLIT + 1, i]), speed_range=speed, start=start
        )
        for i in range(num_clips)
    ]


def stored(frames: np.ndarray, pix_fmt: str, num_frames: int, fps: float) -> np.ndarray:
    """`frames` encoded as H.264 `pix_fmt` and read back as the training pipeline reads clips ([-1, 1])."""
    data = video_io.encode_mp4(frames, fps, pix_fmt=pix_fmt)
    size = frames.shape[1]
    return clips.load_clip(
        data, src_fps=fps, src_num_frames=len(frames), num_frames=num_frames, fps=fps, resolution=size
    )


def jumps(reads: list[dict], floors: list[float]) -> tuple[list[int], float]:
    """(videos over the jump limit with the median step floored at each of `floors` px, median jump ratio) of
    `analyse.analyse_video` reads (or report rows with their `jump_ratio` and `median_step_px`)."""
    ratios = np.asarray([r["jump_ratio"] for r in reads], dtype=float)
    median = np.asarray([r["median_step_px"] for r in reads], dtype=float)
    largest = ratios * np.maximum(median, analyse.MIN_STEP)  # the largest step in pixels
    counts = [int((largest > analyse.JUMP_LIMIT * np.maximum(median, f)).sum()) for f in floors]
    return counts, float(np.nanmedian(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--start", default="free", choices=shapes.START_MODES)
    parser.add_argument("--checkpoint", default=None, help="model folder whose VAE to apply (default: bundled)")
    parser.add_argument("--frames", type=int, default=37)
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument(
        "--floors",
        type=float,
        nargs="+",
        default=[analyse.MIN_STEP, 0.1, 0.2, 0.25, 0.3],
        help="median-step floors (px) to count jumps at; the first is the eval's (analyse.MIN_STEP)",
    )
    parser.add_argument("--report", default=None, help="an `emu-video demo eval --interp` report to count too")
    args = parser.parse_args()
    if args.clips < 1:
        parser.error(f"--clips must be >= 1, got {args.clips}")
    report = None
    if args.report:
        with open(args.report) as f:
            report = json.load(f)
        if not report.get("interpolation") or "median_step_px" not in report["per_prompt"][0]:
            parser.error(f"--report {args.report}: not an `emu-video demo eval --interp` report with median_step_px")
    from emu_jax.sampling.loading import load_model

    source_frames = args.frames + 3  # the dataset's 40 frames, of which load_clip takes the centred 37
    renders = [
        shapes.render_clip(a, source_frames, 32, args.fps) for a in clip_attrs(args.clips, args.seed, args.start)
    ]
    centred = slice((source_frames - args.frames) // 2, (source_frames - args.frames) // 2 + args.frames)
    rows = {
        "rendered": np.stack([clips.to_unit_range(r[centred]) for r in renders]),
        "H.264 yuv420p (the dataset's)": np.stack([stored(r, "yuv420p", args.frames, args.fps) for r in renders]),
        "H.264 yuv444p": np.stack([stored(r, "yuv444p", args.frames, args.fps) for r in renders]),
    }
    vae = evaluate.vae_round_trip(load_model(args.checkpoint or evaluate.default_checkpoint()))
    rows["yuv420p, then the VAE"] = vae(rows["H.264 yuv420p (the dataset's)"])
    print(f"{args.clips} clips, start {args.start}, {args.frames} frames at {args.fps:g} fps")
    print(f"{'stored as':<32}" + "".join(f"{f'jump@{f:g}px':>13}" for f in args.floors) + f"{'median ratio':>14}")
    reads = {name: [analyse.analyse_video(clips.from_unit_range(v)) for v in videos] for name, videos in rows.items()}
    if report is not None:
        reads[f"report ({report['num_prompts']} videos)"] = report["per_prompt"]
    for name, rows_read in reads.items():
        counts, median = jumps(rows_read, args.floors)
        print(f"{name:<32}" + "".join(f"{n:>13}" for n in counts) + f"{median:>14.2f}")
    for i, row in enumerate(report["per_prompt"] if report is not None else ()):
        if jumps([row], args.floors[-1:])[0][0]:
            largest = row["jump_ratio"] * max(row["median_step_px"], analyse.MIN_STEP)
            print(
                f"report row {i}: largest step {largest:.2f} px over a median of {row['median_step_px']:.2f} px"
                f" at frame {row['jump_frame']}; F's video's jump ratio {row['f_jump_ratio']:.2f}"
            )


if __name__ == "__main__":
    main()
