"""`emu-video convert`: a diffusers text-to-image pipeline folder -> an emu_jax checkpoint folder.

Example: `emu-video convert --from-diffusers ./sd15 --out ./ckpt/emu_f_init`
(the folder written by `StableDiffusionPipeline.save_pretrained`, safetensors).
"""

from __future__ import annotations

import argparse
import os

from emu_jax.errors import UserError, as_user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-diffusers",
        required=True,
        metavar="DIR",
        help="diffusers pipeline folder with unet/, vae/, text_encoder/ (+ text_encoder_2/), "
        "tokenizer/ (safetensors weights, config.json)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="new output folder: emu_jax.json + params/ (Orbax) + tokenizer copies",
    )
    parser.add_argument(
        "--cond-channels",
        type=int,
        default=None,
        metavar="N",
        help="extra zero-initialised U-Net input channels for the image conditioning "
        "(default: VAE latent channels + 1 = image latent + mask; 0 for none)",
    )
    parser.add_argument(
        "--no-temporal", action="store_true", help="do not add temporal layers (a pure text-to-image model)"
    )
    parser.add_argument("--num-frames", type=int, default=8, help="frames of the video model (default 8)")
    parser.add_argument("--fps", type=int, default=4, help="frame rate of the video model (default 4)")


def main(args: argparse.Namespace) -> int:
    src, out = args.from_diffusers, args.out
    if not os.path.isdir(src):
        raise UserError(f"--from-diffusers {src!r} is not a folder")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out {out!r} exists and is not an empty folder; choose a new one")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"--out {out!r}: its folder {parent} does not exist or is not writable")
    if args.cond_channels is not None and args.cond_channels < 0:
        raise UserError(f"--cond-channels must be >= 0, got {args.cond_channels}")
    if args.num_frames < 1 or args.fps < 1:
        raise UserError(f"--num-frames and --fps must be >= 1, got {args.num_frames}, {args.fps}")
    from emu_jax.convert.pipeline import convert_diffusers_pipeline

    # A source folder that is not a diffusers pipeline (or has unsupported parts) is the user's to fix.
    with as_user_error(f"--from-diffusers {src}", types=(ValueError, OSError, KeyError)):
        convert_diffusers_pipeline(
            src,
            out,
            cond_channels=args.cond_channels,
            temporal=not args.no_temporal,
            num_frames=args.num_frames,
            fps=args.fps,
        )
    return 0
