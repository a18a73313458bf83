"""`emu-video ablate --study STUDY.py --out DIR [--arm NAME | --report]` (training ablations) and
`emu-video ablate --sweep --checkpoint CKPT --out DIR --methods ddim,euler --steps 10,50 ...` (inference
sweeps, no training); see docs/ablate.md."""

from __future__ import annotations

import argparse
import logging
import pathlib

from emu_jax import compile_cache
from emu_jax.errors import UserError

SWEEP_FLAGS = {  # flag -> (sweep axis, type)
    "methods": ("method", str),
    "steps": ("num_steps", int),
    "spacings": ("spacing", str),
    "guidance_keyframe": ("guidance_keyframe", float),
    "guidance_image": ("guidance_image", float),
    "guidance_text": ("guidance_text", float),
    "rescale": ("guidance_rescale", float),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", help="study file: base config, arms, eval settings")
    parser.add_argument("--out", required=True, help="study folder: arms/NAME/{run,eval.json}, ablate.{json,md,png}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--arm", action="append", help="run just this arm (repeatable); no report")
    group.add_argument("--report", action="store_true", help="only merge finished arms into the report")
    sweep = parser.add_argument_group("inference sweep (--sweep): comma-separated values per axis")
    sweep.add_argument("--sweep", action="store_true", help="sample one --checkpoint over a grid of sampler settings")
    sweep.add_argument("--checkpoint", help="the model to sweep (exported model or training workdir)")
    for flag, (axis, _) in SWEEP_FLAGS.items():
        sweep.add_argument(f"--{flag.replace('_', '-')}", help=f"values of {axis}")
    sweep.add_argument(
        "--prompts", help="file of prompts, one a line (item i = prompt i); optional when a --metric brings its own"
    )
    sweep.add_argument("--num-items", type=int, default=8)
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--batch-size", type=int, default=4)
    sweep.add_argument(
        "--metric", action="append", help="besides ref_pixel_error (always computed): clip_score, MODULE:FUNCTION"
    )
    sweep.add_argument("--clip", help="transformers CLIPModel folder, for clip_score")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from emu_jax.ablate import report, runner, study

    if args.sweep:
        return _sweep(args)
    if not args.study:
        raise UserError("give --study STUDY.py (or --sweep --checkpoint CKPT for an inference sweep)")
    s = study.load(args.study)  # every arm's config and every metric name checked before any training
    out = pathlib.Path(args.out)
    for name in args.arm or ():
        if name not in s.arms:
            raise UserError(f"--arm {name!r} is not in the study; arms: {list(s.arms)}")
    if args.report:
        records = {n: runner.finished(s, out, n) for n in s.arms}
        missing = [n for n, r in records.items() if r is None]
        if missing:
            raise UserError(f"arms not finished yet: {missing} (run them with --arm NAME)")
    else:
        names = args.arm or list(s.arms)
        compile_cache.enable()  # an arm run in its own process (--arm) loads the step an earlier one compiled
        records = {n: runner.run_arm(s, out, n) for n in names}
        if args.arm:
            print(f"arm(s) {names} done; merge with --report once all arms are")
            return 0
    summary = report.write(records, s.baseline, out, s.eval["resamples"], s.eval["seed"])
    print(report.markdown(summary))
    note = f" ({summary['chart']})" if "chart" in summary else ""
    print(f"wrote {out / 'ablate.json'} and {out / 'ablate.md'}{note}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from emu_jax.ablate import report, sweep

    if args.study or args.arm or args.report:
        raise UserError("--sweep takes --checkpoint and grid flags, not --study / --arm / --report")
    if not args.checkpoint:
        raise UserError("--sweep needs --checkpoint CKPT")
    axes = {}
    for flag, (axis, kind) in SWEEP_FLAGS.items():
        text = getattr(args, flag)
        if text:
            try:
                axes[axis] = [kind(v) for v in text.split(",") if v.strip()]
            except ValueError as e:
                raise UserError(f"--{flag.replace('_', '-')} {text!r}: {e}") from None
    if args.num_items < 2:
        raise UserError(f"--num-items must be >= 2 (paired intervals need two items), got {args.num_items}")
    metrics = list(dict.fromkeys(["ref_pixel_error", *(args.metric or [])]))  # the default is always computed
    if "clip_score" in metrics and not args.clip:
        raise UserError("metric clip_score needs --clip CLIPModel folder")
    settings = {
        "metrics": metrics,
        "prompts": sweep_prompts(args, metrics),
        "num_items": args.num_items,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "clip": args.clip,
        "resamples": 2000,
    }
    summary = sweep.run(args.checkpoint, axes, pathlib.Path(args.out), settings)
    print(report.markdown(summary))
    for name, nfe in summary["nfe"].items():
        print(f"{name}: NFE {nfe}")
    return 0


def sweep_prompts(args: argparse.Namespace, metrics: list[str]) -> list[str]:
    """--num-items prompts from --prompts FILE, else from the first metric that brings its own (a
    `prompts(num_items, seed)` attribute), so ref_pixel_error scores the very videos that metric samples."""
    from emu_jax.ablate.metrics import resolve

    if args.prompts:
        prompts = [p for p in pathlib.Path(args.prompts).read_text().splitlines() if p.strip()]
        if len(prompts) < args.num_items:
            raise UserError(f"--prompts {args.prompts}: {len(prompts)} prompts for --num-items {args.num_items}")
        return prompts[: args.num_items]
    for name in metrics:
        own = getattr(resolve(name), "prompts", None) if name != "ref_pixel_error" else None
        if callable(own):
            return [str(p) for p in own(args.num_items, args.seed)]
    raise UserError(
        f"--sweep needs --prompts FILE: no metric of {metrics} brings its own prompts "
        "(a MODULE:FUNCTION metric with a prompts(num_items, seed) attribute does)"
    )
