"""`emu-video ablate --study STUDY.py --out DIR [--arm NAME | --report]`: see docs/ablate.md."""

from __future__ import annotations

import argparse
import logging
import pathlib

from emu_jax.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="study file: base config, arms, eval settings")
    parser.add_argument("--out", required=True, help="study folder: arms/NAME/{run,eval.json}, ablate.{json,md,png}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--arm", action="append", help="run just this arm (repeatable); no report")
    group.add_argument("--report", action="store_true", help="only merge finished arms into the report")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from emu_jax.ablate import report, runner, study

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
        records = {n: runner.run_arm(s, out, n) for n in names}
        if args.arm:
            print(f"arm(s) {names} done; merge with --report once all arms are")
            return 0
    summary = report.write(records, s.baseline, out, s.eval["resamples"], s.eval["seed"])
    print(report.markdown(summary))
    print(
        f"wrote {out / 'ablate.json'} and {out / 'ablate.md'}"
        + (f" ({summary['chart']})" if "chart" in summary else "")
    )
    return 0
