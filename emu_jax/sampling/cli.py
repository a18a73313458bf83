"""`emu-video sample` (also `python -m emu_jax.sampling.cli`): prompts in, keyframe PNG + mp4 + GIF + JSON out.

    emu-video sample --prompt "a red ball bouncing" --prompt "a blue square" --out samples/ \
        [--checkpoint RUN_OR_MODEL] [--interp-checkpoint I] [--image start.png] [--seed 0] [--steps 50]

Per prompt i (stem `{i:04d}_{slug}`): `<stem>_keyframe.png`; `<stem>.mp4` (F's video at the
model's fps) and `<stem>.gif`; with an interpolation model also `<stem>_{fps}fps.mp4` / `.gif`;
and `<stem>.json` with the prompt, its index, the seed, every setting, the stages that ran
and their timings ("video" names the final mp4, as the JUICE tool reads it). All arguments
are checked before anything compiles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any


from emu_jax.diffusion.samplers import METHODS
from emu_jax.sampling.settings import Settings, check_batch_size, check_overrides, check_seed

DEMO_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "demo_model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", action="append", default=[], help="a text prompt (repeatable)")
    parser.add_argument("--prompts-file", help="a text file with one prompt per line (blank lines skipped)")
    parser.add_argument("--image", help="image-to-video: this image (resized + centre-cropped to the model's "
                        "resolution) replaces the generated keyframe")
    parser.add_argument("--negative-prompt", default=None, help="text for the unconditional branches "
                        "(default: the empty prompt)")
    parser.add_argument("--seed", type=int, default=0, help="item i's noise comes from (seed, i) (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's, else 250)")
    parser.add_argument("--sampler", default=None, help=f"one of {', '.join(METHODS)} (default: checkpoint's, else ddim)")
    parser.add_argument("--guidance-keyframe", type=float, default=None, help="keyframe text CFG scale (default 7.5)")
    parser.add_argument("--guidance-image", type=float, default=None, help="video/interp image scale w_i (default 2.0)")
    parser.add_argument("--guidance-text", type=float, default=None, help="video/interp text scale w_p (default 7.5)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per compiled batch (default 1)")
    parser.add_argument("--checkpoint", default=None, help="model F: an emu_jax model folder or a t2v training "
                        f"workdir (default: the bundled demo model, {DEMO_MODEL})")
    parser.add_argument("--interp-checkpoint", default=None, help="interpolation model I (default: CHECKPOINT/interp "
                        "if present; without one the video keeps F's frame rate)")
    parser.add_argument("--no-interp", action="store_true", help="skip interpolation even if a model I exists")
    parser.add_argument("--out", default="samples", help="output folder (default ./samples)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def slug(text: str, max_len: int = 40) -> str:
    """Lowercase ASCII words joined by '-' (at most max_len chars): the file-name part of a prompt."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].rstrip("-")
    return s or "prompt"


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    for i, p in enumerate(prompts):
        if not p.strip():
            raise ValueError(f"--prompt number {i + 1} is empty ({p!r}); every prompt needs some text")
    if args.prompts_file:
        if not os.path.isfile(args.prompts_file):
            raise FileNotFoundError(f"--prompts-file {args.prompts_file!r} does not exist")
        with open(args.prompts_file, encoding="utf-8") as f:
            prompts += [line.strip() for line in f if line.strip()]
    if not prompts:
        raise ValueError("no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE")
    return prompts


# The flag that sets each setting, so an error names what the user typed.
FLAGS = {"num_steps": "--steps", "method": "--sampler", "guidance_keyframe": "--guidance-keyframe",
         "guidance_image": "--guidance-image", "guidance_text": "--guidance-text"}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"num_steps": args.steps, "method": args.sampler, "guidance_keyframe": args.guidance_keyframe,
            "guidance_image": args.guidance_image, "guidance_text": args.guidance_text}


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """Check every argument (prompts, numbers, checkpoints, image) without loading params or compiling."""
    from emu_jax.data.images import prepare_image
    from emu_jax.models import loading

    prompts = read_prompts(args)
    check_overrides(_overrides(args), FLAGS)
    check_batch_size(args.batch_size, "--batch-size")
    check_seed(args.seed, "--seed")
    ckpt = args.checkpoint or DEMO_MODEL
    if args.checkpoint is None and not os.path.isdir(DEMO_MODEL):
        raise FileNotFoundError(
            f"no --checkpoint given and the bundled demo model is missing ({DEMO_MODEL}); train one with "
            "`emu-video demo` (or `emu-video train --config configs/tiny.py:t2v --workdir RUN`) and pass "
            "--checkpoint RUN, or convert weights with `emu-video convert`")
    meta, config, task, schedule, prediction = loading.describe_checkpoint(ckpt)
    if task not in loading.VIDEO_TASKS:
        hint = " (it is an interpolation model: pass it as --interp-checkpoint)" if task == "interp" else ""
        raise ValueError(f"--checkpoint {ckpt} is a {task!r} model; it must be t2v (or t2i){hint}")
    settings = Settings.from_dict(meta.get("sampling"), **_overrides(args))
    settings.validate(schedule, prediction)
    interp_path = None if args.no_interp else loading.find_interp_checkpoint(ckpt, args.interp_checkpoint)
    if interp_path is not None:
        imeta, _, itask, ischedule, iprediction = loading.describe_checkpoint(interp_path)
        if itask != "interp":
            raise ValueError(f"--interp-checkpoint {interp_path} is a {itask!r} model, not an interpolation model")
        Settings.from_dict(imeta.get("sampling"), **_overrides(args)).validate(ischedule, iprediction)
    image, image_note = None, None
    if args.image is not None:
        if task != "t2v":
            raise ValueError(f"--image needs a t2v model; {ckpt} is {task!r}")
        image, image_note = prepare_image(args.image, config.resolution)
    return {"prompts": prompts, "checkpoint": ckpt, "interp": interp_path, "settings": settings,
            "image": image, "image_note": image_note, "task": task}


def write_sample(out: str, s: Any, common: dict) -> dict:
    """Write one Sample's files; returns its JSON record."""
    from PIL import Image

    from emu_jax.data import video_io

    stem = f"{s.index:04d}_{slug(s.prompt)}"
    files = {"keyframe": f"{stem}_keyframe.png"}
    Image.fromarray(s.keyframe).save(os.path.join(out, files["keyframe"]))
    record = {"prompt": s.prompt, "prompt_index": s.index, **common, "stages": s.stages,
              "timings_s": {k: round(v, 3) for k, v in s.timings.items()}, "notes": s.notes}
    if s.video is not None:
        files["video_base"], files["gif_base"] = f"{stem}.mp4", f"{stem}.gif"
        video_io.write_mp4(os.path.join(out, files["video_base"]), s.video, s.fps)
        video_io.write_gif(os.path.join(out, files["gif_base"]), s.video, s.fps)
        record.update(video=files["video_base"], gif=files["gif_base"], fps=s.fps, num_frames=len(s.video))
    if s.interpolated is not None:
        name = f"{stem}_{s.interp_fps}fps"
        files["video_interp"], files["gif_interp"] = name + ".mp4", name + ".gif"
        video_io.write_mp4(os.path.join(out, files["video_interp"]), s.interpolated, s.interp_fps)
        video_io.write_gif(os.path.join(out, files["gif_interp"]), s.interpolated, s.interp_fps)
        record.update(video=files["video_interp"], gif=files["gif_interp"], fps=s.interp_fps,
                      num_frames=len(s.interpolated), base_fps=s.fps, base_num_frames=len(s.video))
    record["files"] = files
    with open(os.path.join(out, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    return record


def main(args: argparse.Namespace) -> int:
    try:
        v = validate(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"emu-video sample: error: {e}", file=sys.stderr)
        return 2
    from emu_jax.sampling.pipeline import NonFiniteError, Pipeline

    if v["image_note"]:
        print(f"image: {v['image_note']}")
    t0 = time.perf_counter()
    pipe = Pipeline.from_checkpoint(
        v["checkpoint"], interp_checkpoint=v["interp"], use_interp=v["interp"] is not None,
        overrides=_overrides(args), batch_size=args.batch_size, negative_prompt=args.negative_prompt,
        progress=not args.quiet)
    for note in pipe.notes:
        print(note)
    os.makedirs(args.out, exist_ok=True)
    common = {"seed": args.seed, "checkpoint": os.path.abspath(v["checkpoint"]),
              "interp_checkpoint": os.path.abspath(v["interp"]) if v["interp"] else None,
              "negative_prompt": args.negative_prompt, "batch_size": args.batch_size,
              "settings": pipe.settings.to_dict(),
              "interp_settings": pipe.interp_settings.to_dict() if pipe.interp is not None else None,
              "image": {"path": os.path.abspath(args.image), "note": v["image_note"]} if args.image else None,
              "item_noise": "fold_in(PRNGKey(seed), prompt_index), then a per-stage fold_in"}
    try:
        for batch in pipe.run(v["prompts"], seed=args.seed, image=v["image"]):
            for s in batch:
                rec = write_sample(args.out, s, common)
                print(f"[{s.index}] {s.prompt!r} -> {os.path.join(args.out, rec['files']['keyframe'])}"
                      + (f", {os.path.join(args.out, rec['video'])}" if "video" in rec else ""))
    except NonFiniteError as e:
        print(f"emu-video sample: error: {e}", file=sys.stderr)
        return 1
    compiled = ", ".join(f"{k} {t:.1f}s" for k, t in pipe.compile_s.items())
    print(f"done: {len(v['prompts'])} prompt(s) in {time.perf_counter() - t0:.1f}s (compile: {compiled}) "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m emu_jax.sampling.cli", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
