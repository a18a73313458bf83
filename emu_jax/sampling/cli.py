"""`emu-video sample` (also `python -m emu_jax.sampling.cli`): prompts in, keyframe PNG + mp4 + GIF + JSON out.

    emu-video sample --prompts-file prompts.txt --out samples/ [--checkpoint RUN_OR_MODEL] [--seed 0] \
        [--steps 50] [--batch-size 4] [--mesh data=-1,fsdp=2] [--distributed | --coordinator H:P ...]

Per prompt i (stem `{i:04d}_{slug}`): `<stem>_keyframe.png`, `<stem>.mp4` / `.gif` (F's video), with an
interpolation model `<stem>_{fps}fps.mp4` / `.gif`, and `<stem>.json` (prompt, index, seed, settings,
stages, timings; "video" names the final mp4, as the JUICE tool reads it); `manifest.json` names the run.
Item i depends only on (checkpoint, settings, seed, i); a rerun skips finished items (see `outputs`).
In a multi-process job every process samples its share of each global batch and writes its own items.
All arguments are checked before anything compiles.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import warnings
from typing import Any

from emu_jax import distributed
from emu_jax.diffusion.samplers import METHODS
from emu_jax.errors import UserError
from emu_jax.sampling import outputs
from emu_jax.sampling import settings as settings_lib
from emu_jax.sampling.settings import Settings, check_batch_size, check_overrides, check_seed

DEMO_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "demo_model")
# The flag that sets each setting, so an error names what the user typed.
FLAGS = {
    "num_steps": "--steps",
    "method": "--sampler",
    "guidance_keyframe": "--guidance-keyframe",
    "guidance_image": "--guidance-image",
    "guidance_text": "--guidance-text",
    "param_dtype": "--param-dtype",
    "guidance_passes": "--guidance-passes",
}


def bundled_settings() -> Settings:
    """The bundled model's sampling settings (what runs without --checkpoint), for --help."""
    from emu_jax.sampling.outputs import read_json

    meta = read_json(os.path.join(DEMO_MODEL, "emu_jax.json")) or {}
    return Settings.from_dict(meta.get("sampling"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = bundled_settings()
    ckpt = "default: the checkpoint's; bundled model"
    parser.add_argument("--prompt", action="append", default=[], help="a text prompt (repeatable)")
    parser.add_argument("--prompts-file", help="a text file with one prompt per line (blank lines skipped)")
    parser.add_argument(
        "--image",
        help="image-to-video: this image (resized + centre-cropped to the model's "
        "resolution) replaces the generated keyframe",
    )
    parser.add_argument(
        "--negative-prompt", default=None, help="text for the unconditional branches (default: the empty prompt)"
    )
    parser.add_argument("--seed", type=int, default=0, help="item i's noise comes from (seed, i) (default 0)")
    parser.add_argument("--steps", type=int, default=None, help=f"sampling steps ({ckpt}: {d.num_steps})")
    parser.add_argument(
        "--interp-steps",
        type=int,
        default=None,
        help="the interpolation model's sampling steps (default: --steps if given, else its checkpoint's)",
    )
    parser.add_argument("--sampler", default=None, help=f"one of {', '.join(METHODS)} ({ckpt}: {d.method})")
    parser.add_argument(
        "--guidance-keyframe", type=float, default=None, help=f"keyframe text CFG scale ({ckpt}: {d.guidance_keyframe})"
    )
    parser.add_argument(
        "--guidance-image", type=float, default=None, help=f"video w_i ({ckpt}: {d.guidance_image}); sets I's too"
    )
    parser.add_argument(
        "--guidance-text", type=float, default=None, help=f"video w_p ({ckpt}: {d.guidance_text}); sets I's too"
    )
    parser.add_argument(
        "--param-dtype",
        default=None,
        help=f"weights' dtype while sampling: {', '.join(settings_lib.PARAM_DTYPES)} ({ckpt}: {d.param_dtype}); "
        "bfloat16 halves their memory",
    )
    parser.add_argument(
        "--guidance-passes",
        default=None,
        help=f"guidance forwards: {', '.join(settings_lib.GUIDANCE_PASSES)} ({ckpt}: {d.guidance_passes}); "
        "sequential needs less activation memory",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="prompts per compiled batch, per process (default 1); outputs do not depend on it",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="model F: an emu_jax model folder or a t2v training "
        f"workdir (default: the bundled demo model, {DEMO_MODEL})",
    )
    parser.add_argument(
        "--interp-checkpoint",
        default=None,
        help="interpolation model I (default: CHECKPOINT/interp "
        "if present; without one the video keeps F's frame rate)",
    )
    parser.add_argument("--no-interp", action="store_true", help="skip interpolation even if a model I exists")
    parser.add_argument(
        "--out",
        default="samples",
        help="output folder (default ./samples); a rerun of the same command skips finished items",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of another command in --out")
    parser.add_argument(
        "--mesh",
        default=None,
        help="device mesh, e.g. data=-1,fsdp=2,tensor=1: the batch "
        "goes over data x fsdp, parameters over fsdp / tensor (default: data over the devices)",
    )
    parser.add_argument(
        "--save-frames",
        action="store_true",
        help="also write <stem>_frames.npz with the exact uint8 frames (the mp4 / GIF are lossy)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    distributed.add_arguments(parser)


def slug(text: str, max_len: int = 40) -> str:
    return outputs.slug(text, max_len)


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt or [])
    for i, p in enumerate(prompts):
        if not p.strip():
            raise UserError(f"--prompt number {i + 1} is empty ({p!r}); every prompt needs some text")
    if args.prompts_file:
        if not os.path.isfile(args.prompts_file):
            raise FileNotFoundError(f"--prompts-file {args.prompts_file!r} does not exist")
        with open(args.prompts_file, encoding="utf-8") as f:
            prompts += [line.strip() for line in f if line.strip()]
    if not prompts:
        raise UserError("no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE")
    return prompts


def parse_mesh(text: str | None) -> dict[str, int] | None:
    """'data=-1,fsdp=2' -> {'data': -1, 'fsdp': 2}; sizes are checked against the devices later."""
    from emu_jax.sharding import MESH_AXES

    if text is None:
        return None
    shape = {}
    for part in text.split(","):
        name, _, size = part.partition("=")
        if name.strip() not in MESH_AXES or not size.strip().lstrip("-").isdigit():
            raise UserError(f"--mesh {text!r}: write axis=size pairs with axes from {MESH_AXES}, e.g. data=-1,fsdp=2")
        shape[name.strip()] = int(size)
    return shape


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "num_steps": args.steps,
        "method": args.sampler,
        "guidance_keyframe": args.guidance_keyframe,
        "guidance_image": args.guidance_image,
        "guidance_text": args.guidance_text,
        "param_dtype": args.param_dtype,
        "guidance_passes": args.guidance_passes,
    }


def _interp_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """I's settings: the same overrides, with its own step count when --interp-steps is given."""
    return {**_overrides(args), **({"num_steps": args.interp_steps} if args.interp_steps is not None else {})}


def prompt_warnings(model: Any, prompts: list[str]) -> list[list[str]]:
    """Per prompt, what its tokenizers warned (words outside the vocabulary, truncation)."""
    out = []
    for p in prompts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.tokenize_all([p])
        out.append(sorted({str(w.message) for w in caught}))
    return out


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """Check every argument (prompts, numbers, checkpoints, image, mesh) without loading params or compiling."""
    from emu_jax.data.images import prepare_image
    from emu_jax.models.emu import EmuModel
    from emu_jax.sampling import loading

    prompts = read_prompts(args)
    check_overrides(_overrides(args), FLAGS)
    check_overrides({"num_steps": args.interp_steps}, {"num_steps": "--interp-steps"})
    check_batch_size(args.batch_size, "--batch-size")
    check_seed(args.seed, "--seed")
    mesh = parse_mesh(args.mesh)
    ckpt = args.checkpoint or DEMO_MODEL
    if args.checkpoint is None and not os.path.isdir(DEMO_MODEL):
        raise FileNotFoundError(
            f"no --checkpoint given and the bundled demo model is missing ({DEMO_MODEL}); train one with "
            "`emu-video demo` (or `emu-video train --config configs/tiny.py:t2v --workdir RUN`) and pass "
            "--checkpoint RUN, or convert weights with `emu-video convert`"
        )
    meta, config, task, schedule, prediction = loading.describe_checkpoint(ckpt)
    if task not in loading.VIDEO_TASKS:
        hint = " (it is an interpolation model: pass it as --interp-checkpoint)" if task == "interp" else ""
        raise UserError(f"--checkpoint {ckpt} is a {task!r} model; it must be t2v (or t2i){hint}")
    settings = Settings.from_dict(meta.get("sampling"), **_overrides(args))
    settings.validate(schedule, prediction)
    interp_path = None if args.no_interp else loading.find_interp_checkpoint(ckpt, args.interp_checkpoint)
    interp_settings = None
    if interp_path is not None:
        imeta, _, itask, ischedule, iprediction = loading.describe_checkpoint(interp_path)
        if itask != "interp":
            raise UserError(f"--interp-checkpoint {interp_path} is a {itask!r} model, not an interpolation model")
        interp_settings = Settings.from_dict(imeta.get("sampling"), **_interp_overrides(args))
        interp_settings.validate(ischedule, iprediction)
    image, image_note = None, None
    if args.image is not None:
        if task != "t2v":
            raise UserError(f"--image needs a t2v model; {ckpt} is {task!r}")
        image, image_note = prepare_image(args.image, config.resolution)
    identity = {
        "checkpoint_id": loading.checkpoint_id(ckpt),
        "interp_checkpoint_id": loading.checkpoint_id(interp_path) if interp_path else None,
        "settings": settings.to_dict(),
        "interp_settings": interp_settings and interp_settings.to_dict(),
        "seed": args.seed,
        "negative_prompt": args.negative_prompt,
        "image_sha256": hashlib.sha256(image.tobytes()).hexdigest()[:16] if image is not None else None,
        "prompts_sha256": outputs.prompts_digest(prompts),
        "num_prompts": len(prompts),
    }
    warned = prompt_warnings(EmuModel(config, root=ckpt), prompts)
    items = [
        {"index": i, "prompt": p, "seed": args.seed, "stem": outputs.stem(i, p), "warnings": w}
        for i, (p, w) in enumerate(zip(prompts, warned))
    ]
    return {
        "prompts": prompts,
        "checkpoint": ckpt,
        "interp": interp_path,
        "settings": settings,
        "image": image,
        "image_note": image_note,
        "task": task,
        "mesh": mesh,
        "identity": identity,
        "items": items,
    }


def write_sample(out: str, s: Any, common: dict) -> dict:
    return outputs.write_sample(out, s, common)


def _error(e: BaseException) -> int:
    from emu_jax.errors import one_line

    print(f"emu-video sample: error: {one_line(e)}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    try:
        v = validate(args)
    except (ValueError, FileNotFoundError) as e:
        return _error(e)
    distributed.initialize_from_args(args)
    try:
        return _run(args, v)
    except UserError as e:
        return _error(e)


def _barrier(name: str) -> None:
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _run(args: argparse.Namespace, v: dict) -> int:
    import jax

    from emu_jax import sharding
    from emu_jax.sampling.pipeline import Pipeline
    from emu_jax.sampling.results import NonFiniteError

    out, items, identity = args.out, v["items"], v["identity"]
    rid = outputs.run_id(identity)
    remove = outputs.check_folder(out, identity, [it["stem"] for it in items], args.overwrite)
    try:  # the mesh before any weights load, so a bad --mesh is a one-line error
        sharding.sampling_mesh(args.batch_size, v["mesh"])
    except ValueError as e:
        raise UserError(f"--mesh: {e}") from None
    pid, nproc = jax.process_index(), jax.process_count()
    if pid == 0:
        outputs.prepare_folder(out, remove)
    _barrier("sample: folder ready")
    pending = [it for it in items if not outputs.item_done(out, it["stem"], rid)]
    _barrier("sample: pending read")
    already = len(items) - len(pending)
    if v["image_note"]:
        print(f"image: {v['image_note']}")
    if pid == 0 and already:
        print(f"{already} of {len(items)} item(s) already done in {out}; sampling the other {len(pending)}")
    if not pending:
        print(f"done: all {len(items)} item(s) were already in {out}")
        return 0
    t0 = time.perf_counter()
    pipe = Pipeline.from_checkpoint(
        v["checkpoint"],
        interp_checkpoint=v["interp"],
        use_interp=v["interp"] is not None,
        overrides=_overrides(args),
        interp_overrides=_interp_overrides(args),
        batch_size=args.batch_size,
        negative_prompt=args.negative_prompt,
        progress=not args.quiet and pid == 0,
        mesh_shape=v["mesh"],
        interp_skipped="interpolation skipped by request (--no-interp)" if args.no_interp else None,
    )
    for note in pipe.notes:
        print(note)
    common = {
        "seed": args.seed,
        "run_id": rid,
        "checkpoint": os.path.abspath(v["checkpoint"]),
        "checkpoint_id": identity["checkpoint_id"],
        "interp_checkpoint": os.path.abspath(v["interp"]) if v["interp"] else None,
        "negative_prompt": args.negative_prompt,
        "settings": pipe.settings.to_dict(),
        "interp_settings": pipe.interp_settings.to_dict() if pipe.interp is not None else None,
        "image": {"path": os.path.abspath(args.image), "note": v["image_note"]} if args.image else None,
        "item_noise": "fold_in(PRNGKey(seed), prompt_index), then a per-stage fold_in",
    }
    b = args.batch_size
    glob = b * nproc  # items per global batch: process p samples rows [p*b, (p+1)*b) of each
    t1 = time.perf_counter()
    try:
        for k, g in enumerate(range(0, len(pending), glob)):
            mine = pending[g : g + glob][pid * b : (pid + 1) * b]
            batch = pipe.run_batch(
                [it["prompt"] for it in mine],
                [it["index"] for it in mine],
                args.seed,
                None if v["image"] is None else pipe.check_image(v["image"], len(mine)),
                k,
            )
            if k == 0 and pid == 0:  # process 0 has the first rows: the manifest precedes this run's items
                outputs.write_manifest(out, identity, items, [it["index"] for it in items if it not in pending])
            for s, it in zip(batch, mine):
                rec = outputs.write_sample(out, s, {**common, "warnings": it["warnings"]}, args.save_frames)
                print(
                    f"[{s.index}] {s.prompt!r} -> {os.path.join(out, rec['files']['keyframe'])}"
                    + (f", {os.path.join(out, rec['video'])}" if "video" in rec else "")
                )
            done_now = min(len(pending), g + glob)
            if pid == 0 and not args.quiet:
                el = time.perf_counter() - t1
                eta = el / done_now * (len(pending) - done_now)
                print(
                    f"items {already + done_now}/{len(items)} done: {el:.1f}s elapsed, ETA {eta:.1f}s "
                    "for the whole file",
                    file=sys.stderr,
                    flush=True,
                )
    except NonFiniteError as e:
        print(f"emu-video sample: error: {e}", file=sys.stderr)
        return 1
    _barrier("sample: all written")
    if pid == 0 and pending:
        outputs.write_manifest(
            out, identity, items, [it["index"] for it in items if outputs.item_done(out, it["stem"], rid)]
        )
    compiled = ", ".join(f"{k} {t:.1f}s" for k, t in pipe.compile_s.items())
    print(f"done: {len(pending)} prompt(s) in {time.perf_counter() - t0:.1f}s (compile: {compiled}) -> {out}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m emu_jax.sampling.cli", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
