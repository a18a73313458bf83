"""`emu-video demo train|eval`: the moving-shapes recipe and its automatic faithfulness evaluation.

emu-video demo train --workdir DIR [--size default|tiny] [--stages t2i,t2v_s9] [--stop-after N]
emu-video demo eval [--checkpoint DIR] [--num-prompts 200] [--seed S] [--output FILE.json]
emu-video demo compare NEW.json BASE.json [--output FILE.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib

from emu_jax import compile_cache
from emu_jax.demo.shapes import START_MODES
from emu_jax.errors import UserError, as_user_error, check_output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train the whole chain (data, VAE, T2I, F, I) and export the model folder")
    t.add_argument(
        "--workdir",
        required=True,
        help="recipe folder (one sub-folder per stage); re-running resumes and skips finished stages",
    )
    t.add_argument(
        "--size",
        default="default",
        choices=("default", "tiny"),
        help="default: the demo model (~13.1 h on 2 CPU cores, docs/demo.md); tiny: 2 steps per sub-stage, for tests",
    )
    t.add_argument(
        "--stages",
        default="data,vae,t2i,t2v,interp,export",
        help="comma-separated stages (data,vae,t2i,t2v,interp,export: each runs all its sub-stages) and "
        "sub-stages (e.g. t2v_s9,t2v_s10: part of F's curriculum; docs/demo.md lists them), run in recipe order",
    )
    t.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop each training sub-stage after this many steps of this call (resume later)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every training sub-stage, e.g. --set train.steps=10 (repeatable)",
    )

    e = sub.add_parser("eval", help="sample prompts, read the videos back, report per-attribute accuracy")
    e.add_argument(
        "--checkpoint", default=None, help="model folder (default: the bundled demo model emu_jax/assets/demo_model)"
    )
    e.add_argument("--num-prompts", type=int, default=200, help="prompts to sample (>= 1)")
    e.add_argument(
        "--seed", type=int, default=1234, help="prompt-attribute and sampling seed (the training set uses seed 0)"
    )
    e.add_argument("--batch-size", type=int, default=25, help="prompts sampled per batch")
    e.add_argument(
        "--ceiling-clips",
        type=int,
        default=200,
        help="real (rendered) clips analysed as the analyser's own ceiling check",
    )
    e.add_argument(
        "--word-use-clips",
        type=int,
        default=32,
        help="real clips on which to measure word use: the loss rise when one attribute's word is swapped (0: skip)",
    )
    e.add_argument(
        "--first-frame-clips",
        type=int,
        default=32,
        help="real clips whose first frame and caption are given to the video stage, to judge its "
        "direction apart from the keyframe's (0: skip)",
    )
    e.add_argument(
        "--interp-real-clips",
        type=int,
        default=32,
        help="with --interp: real 16 fps clips whose 8 given-slot frames and caption are given to I alone, "
        "to judge the interpolation apart from F's video (0: skip)",
    )
    e.add_argument(
        "--clips-start",
        default="path",
        choices=START_MODES,
        help="where every real clip starts (word use, first frame, I given real frames, and the ceilings): "
        "path (the dataset's own clips, whose first frame tells the direction; default), centre or free (it "
        "does not; these move at the curriculum's speed, as the shipped model's training clips do)",
    )
    e.add_argument("--num-steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    e.add_argument(
        "--interp",
        action="store_true",
        help="also run the interpolation model and judge motion on its 16 fps video "
        "(default: F's 8 frames; I costs ~5x the video stage)",
    )
    e.add_argument("--interp-checkpoint", default=None, help="with --interp: model I (default: CHECKPOINT/interp)")
    e.add_argument(
        "--interp-steps", type=int, default=None, help="with --interp: I's sampler steps (default: I's checkpoint's)"
    )
    e.add_argument("--output", default=None, help="write the full report (JSON) here")
    e.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    c = sub.add_parser(
        "compare",
        help="two `demo eval --output` reports on their shared prompts: paired differences with intervals",
    )
    c.add_argument("new", metavar="NEW", help="report JSON of the model under test")
    c.add_argument("base", metavar="BASE", help="report JSON to compare against (e.g. docs/demo_eval.json)")
    c.add_argument("--output", default=None, help="write the comparison (JSON) here")


def _parse_sets(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        out.append((key, value))
    return out


def _read_report(path: str) -> dict:
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read report {path}: {e}") from None
    if not isinstance(report, dict):
        raise UserError(f"{path} is not a `demo eval` report (a JSON object)")
    return report


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.action == "train":
        from emu_jax.demo import recipe

        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        with as_user_error("--stages", types=(ValueError,)):
            recipe.select(args.size, stages)
        if args.stop_after is not None and args.stop_after < 1:
            raise UserError(f"--stop-after must be >= 1, got {args.stop_after}")
        overrides = _parse_sets(args.set)
        if os.path.exists(args.workdir) and not os.path.isdir(args.workdir):
            raise UserError(f"--workdir {args.workdir} is a file, not a recipe folder")
        # Every config and recipe error before run_recipe creates anything.
        with as_user_error("--set", types=(ValueError, TypeError)):
            for name, stage in recipe.units(args.size):
                if stage in recipe.TRAIN_STAGES:
                    recipe.stage_config(name, args.size, os.path.abspath(args.workdir), overrides=overrides)
        if os.path.isdir(args.workdir):
            with as_user_error(types=(ValueError, OSError)):
                recipe.Record(pathlib.Path(args.workdir).absolute(), args.size)
        compile_cache.enable()  # a sub-stage whose step program an earlier one compiled loads it
        record = recipe.run_recipe(
            args.workdir, args.size, stages=stages, overrides=overrides, stop_after=args.stop_after
        )
        print(json.dumps(record, indent=2))
        return 0
    if args.action == "compare":
        from emu_jax.demo import compare

        if args.output:
            check_output_file(args.output, "--output")
        result = compare.compare(_read_report(args.new), _read_report(args.base))
        print(compare.format_comparison(result, args.new, args.base))
        if args.output:
            with open(args.output, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    from emu_jax.demo import eval_report, evaluate

    counts = {
        "--ceiling-clips": args.ceiling_clips,
        "--word-use-clips": args.word_use_clips,
        "--first-frame-clips": args.first_frame_clips,
        "--interp-real-clips": args.interp_real_clips,
    }
    if args.num_prompts < 1 or args.batch_size < 1 or min(counts.values()) < 0:
        raise UserError(
            f"--num-prompts and --batch-size must be >= 1, {', '.join(counts)} >= 0; got "
            f"--num-prompts {args.num_prompts}, --batch-size {args.batch_size}, "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
    for flag, steps in (("--num-steps", args.num_steps), ("--interp-steps", args.interp_steps)):
        if steps is not None and steps < 1:
            raise UserError(f"{flag} must be >= 1, got {steps}")
    if (args.interp_checkpoint or args.interp_steps) and not args.interp:
        raise UserError("--interp-checkpoint and --interp-steps need --interp")
    if args.output:
        check_output_file(args.output, "--output")
    if args.checkpoint:
        from emu_jax import model_folder

        model_folder.load_meta(args.checkpoint)  # a missing or foreign folder fails here, before any model is built
    if args.interp_checkpoint:
        from emu_jax import model_folder

        model_folder.load_meta(args.interp_checkpoint)
    report = evaluate.run(
        checkpoint=args.checkpoint,
        num_prompts=args.num_prompts,
        seed=args.seed,
        batch_size=args.batch_size,
        ceiling_clips=args.ceiling_clips,
        num_steps=args.num_steps,
        use_interp=args.interp,
        interp_checkpoint=args.interp_checkpoint,
        interp_num_steps=args.interp_steps,
        word_use_clips=args.word_use_clips,
        first_frame_clips=args.first_frame_clips,
        interp_real_clips=args.interp_real_clips,
        clips_start=args.clips_start,
        progress=not args.quiet,
    )
    print(eval_report.format_report(report))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0
