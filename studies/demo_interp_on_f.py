"""I fine-tuned on F's frames: does I read F's 8 frames better when it trains on F's kind of input?

The shipped I, given the 8 frames of real clips, is at the real-clip floor; it loses consistency and adds
jumps only on F's frames (docs/demo.md, "Interpolation"). This study renders F's version of training clips
(SDEdit: the clip's 8 given frames noised to t 499-799, then F's sampler from there with the clip's caption
and first frame) and fine-tunes the shipped I with a share of each batch (`--f-fraction`) given F's version
instead of the clip's own frames (`given_latents` in the batch); the target stays the clip's real 37 frames.

  emu-video demo train --workdir runs/demo --stages data_s8                      # the dataset (1 min)
  python studies/demo_interp_on_f.py render --data runs/demo --out runs/interp_on_f/clips --clips 640
  python studies/demo_interp_on_f.py train --clips-dir runs/interp_on_f/clips --out runs/interp_on_f/i \\
      --steps 400 --f-fraction 0.75 --ema-decay 0.99
  emu-video demo eval --interp --interp-checkpoint runs/interp_on_f/i --ceiling-clips 0 \\
      --word-use-clips 0 --first-frame-clips 0 --interp-real-clips 0 --output runs/interp_on_f/report.json

Measured (2 CPU cores; render ~3 s per clip, ~7 s per step, the 200-prompt eval ~60 min): 640 clips, 400 steps,
`--f-fraction 0.75 --ema-decay 0.99`, against the shipped I on the same F videos (report
docs/demo_eval_interp_on_f.json; `emu-video demo compare docs/demo_eval_interp_on_f.json docs/demo_eval.json`):
consistent 0.895 -> 0.915 (+0.020 [-0.005, +0.050]), jumps where F has none 20 -> 21,
direction and all four unchanged: not shipped. The first try (384 clips, 200 steps, EMA 0.998, half F) on 50
prompts: jumps 6 -> 4, consistent 0.90 -> 0.90.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax import conditioning, model_folder, sharding
from emu_jax.data.pipeline import make_loader
from emu_jax.demo import recipe
from emu_jax.diffusion import objectives, samplers
from emu_jax.sampling import loading, stages
from emu_jax.training import loop

SHIPPED = pathlib.Path(__file__).resolve().parents[1] / "emu_jax" / "assets" / "demo_model"
SDEDIT_STEPS = 10  # F's DDIM plan for the rendering; start index 2..5 is t 799..499


def render(args) -> None:
    """Writes OUT/part_XXX.npz: the clips' real 37-frame latents, their 8 given frames and F's rendering of
    them; a killed run resumes at the first missing part."""
    f, i = loading.load_model(str(SHIPPED)), loading.load_model(str(SHIPPED / "interp"))
    cfg = recipe.stage_config("interp_4", "default", pathlib.Path(args.data))
    plan = samplers.make_plan(f.schedule, method="ddim", num_steps=SDEDIT_STEPS, prediction="v", spacing="trailing")
    uncond = stages.null_token_batch(f.model)
    w = f.meta["sampling"]

    @jax.jit
    def one(fp, ip, video, ids, mask, key, i0):
        k_vae, k_noise, k_steps = jax.random.split(key, 3)
        latents = i.model.encode_video(ip, video, k_vae)
        given = conditioning.given_frames(latents, i.layout)
        tokens = {"text_ids_0": ids, "text_mask_0": mask}
        cb = stages.video_conditions(f.model, fp, tokens, uncond, given[:, :1], given.shape[1])
        t0 = jnp.full((given.shape[0],), jnp.asarray(plan.timesteps)[i0])
        x = objectives.q_sample(f.schedule, given, t0, jax.random.normal(k_noise, given.shape)).astype(jnp.float32)
        state = samplers.SamplerState(x, jnp.zeros_like(x))
        keys = jax.random.split(k_steps, given.shape[0])
        scales = {"image": w["guidance_image"], "text": w["guidance_text"]}
        state = stages.denoise_steps(
            f.model, fp, plan, f.schedule, cb, state, keys, scales, i0, plan.num_steps, mode="two_condition"
        )
        return latents, given, stages.finish(plan, f.schedule, state)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    it = iter(make_loader(cfg.data, split="train", seed=7, tokenizer=i.model.tokenizers[0], batch_size=args.batch))
    fp, ip = jax.device_put(f.params), jax.device_put(i.params)
    rng = np.random.default_rng(7)
    parts = args.clips // args.batch
    for part in range(parts):
        b, i0 = next(it), int(rng.integers(2, 6))  # drawn for every part, so a resumed run renders the same
        path = out / f"part_{part:03d}.npz"
        if path.exists():
            continue
        t = time.perf_counter()
        latents, given, rendered = jax.device_get(
            one(fp, ip, b["video"], b["text_ids"], b["text_mask"], jax.random.key(part), i0)
        )
        tmp = path.with_name(f".{path.name}")
        with open(tmp, "wb") as fh:  # np.savez on a path would append .npz to the temporary name
            np.savez(
                fh,
                latents=latents,
                given_real=given,
                given_f=rendered,
                text_ids=b["text_ids"],
                text_mask=b["text_mask"],
            )
        tmp.rename(path)
        print(f"part {part + 1}/{parts}: t0 {plan.timesteps[i0]}, {time.perf_counter() - t:.0f} s", flush=True)


def train(args) -> None:
    """Fine-tunes the shipped I (the interp_4 row's optimiser and EMA) and exports its EMA in bfloat16 to OUT."""
    meta = json.loads((SHIPPED / "interp" / model_folder.META_FILE).read_text())
    scale = {k: meta["model"]["vae"][k] for k in ("scaling_factor", "shift_factor")}
    workdir = pathlib.Path(args.out).parent
    cfg = recipe.stage_config(
        "interp_4",
        "default",
        workdir,
        latent_scale=scale,
        overrides=(("train.steps", str(args.steps)), ("train.ema_decay", str(args.ema_decay))),
    )
    cfg.train.init_from = str(SHIPPED / "interp")
    parts = [np.load(p) for p in sorted(pathlib.Path(args.clips_dir).glob("part_*.npz"))]
    data = {
        k: np.concatenate([p[k] for p in parts]) for k in ("latents", "given_real", "given_f", "text_ids", "text_mask")
    }
    n = len(data["latents"])
    run = loop.make_run(cfg)
    state = run.init_state()
    rng, b = np.random.default_rng(11), cfg.train.batch_size
    t, losses = time.perf_counter(), []
    with sharding.use_mesh(run.mesh, run.rules):
        for step in range(1, args.steps + 1):
            idx = rng.choice(n, b, replace=False)
            from_f = (rng.random(b) < args.f_fraction)[:, None, None, None, None]
            batch = {
                "latents": data["latents"][idx],
                "given_latents": np.where(from_f, data["given_f"][idx], data["given_real"][idx]),
                "text_ids_0": data["text_ids"][idx],
                "text_mask_0": data["text_mask"][idx],
            }
            state, m = run.step(state, sharding.shard_batch(batch, run.mesh))
            losses.append(m["loss"])
            if step % 20 == 0 or step == args.steps:
                loss = float(np.mean(jax.device_get(losses)))
                print(
                    f"step {step}/{args.steps} loss {loss:.4f} {(time.perf_counter() - t) / step:.1f} s/step",
                    flush=True,
                )
                losses = []
    params = model_folder.cast_floats(jax.device_get(state.ema_params), "bfloat16")
    out = pathlib.Path(args.out)
    model_folder.save_checkpoint(
        str(out),
        {**meta, "run": f"interp_on_f_{args.steps}", "trained_steps": int(meta.get("trained_steps", 0)) + args.steps},
        params,
    )
    shutil.copytree(SHIPPED / "interp" / "tokenizer", out / "tokenizer")
    print(f"I -> {out}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="F's rendering of data_s8 training clips")
    r.add_argument("--data", required=True, help="recipe workdir holding data_s8")
    r.add_argument("--out", required=True)
    r.add_argument("--clips", type=int, default=384)
    r.add_argument("--batch", type=int, default=32)
    t = sub.add_parser("train", help="fine-tune the shipped I on rendered clips")
    t.add_argument("--clips-dir", required=True)
    t.add_argument("--out", required=True, help="new folder for the exported I")
    t.add_argument("--steps", type=int, default=200)
    t.add_argument("--f-fraction", type=float, default=0.5, help="share of examples given F's frames")
    # The recipe's 0.998 keeps two thirds of the starting weights after 200 steps; a short fine-tune wants less.
    t.add_argument("--ema-decay", type=float, default=0.998, help="EMA decay of the exported weights")
    args = p.parse_args(argv)
    if args.cmd == "train" and pathlib.Path(args.out).exists():
        p.error(f"--out {args.out} exists; choose a new folder")
    {"render": render, "train": train}[args.cmd](args)


if __name__ == "__main__":
    main()
