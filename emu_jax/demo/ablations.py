"""The demo's ablations: the recipe's T2I and F stages re-run with one thing changed, same compute each.

Arms (`ARMS`; each trains one stage with the recipe's own schedule and batch):
  t2i_v / t2i_eps   T2I with zero terminal SNR + v (the recipe) / the standard schedule with eps
  f_v / f_eps       F from each of them (frozen spatial layers, image + text conditioned)
  f_direct          F trained without the image (always dropped): direct text-to-video
  f_all             F with the spatial layers fine-tuned too
  f_text            F with temporal cross-attention to the text (what the shipped recipe uses)
Every arm reads the recipe workdir's VAE (`WORKDIR/vae`), writes its run to `WORKDIR/ablations/ARM`,
and F arms are scored by `evaluate.run` (200 held-out prompts, keyframe + F's 8 frames).

The training clips are the dataset's train split rendered in memory (`render_split`: the same
attribute draws, without the H.264 round trip), so the arms run where TFDS and video decoding are not
installed and all arms see identical data. Arms of one stage are independent and can run in parallel
(`python -m emu_jax.demo.ablations WORKDIR ARM OUTDIR`, one process each; an F arm waits for its T2I).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import numpy as np

EPS = (("diffusion.zero_terminal_snr", "false"), ("diffusion.prediction", "eps"))
ARMS = {  # arm -> (stage, parent arm or 'vae', config overrides)
    "t2i_v": ("t2i", "vae", ()),
    "t2i_eps": ("t2i", "vae", EPS),
    "f_v": ("t2v", "t2i_v", (("model.unet.temporal_cross_attention", "false"),)),
    "f_eps": ("t2v", "t2i_eps", EPS + (("model.unet.temporal_cross_attention", "false"),)),
    "f_direct": (
        "t2v",
        "t2i_v",
        (
            ("model.unet.temporal_cross_attention", "false"),
            ("train.drop_text", "0.0"),
            ("train.drop_image", "0.95"),
            ("train.drop_both", "0.05"),
        ),
    ),  # image always dropped
    "f_all": ("t2v", "t2i_v", (("model.unet.temporal_cross_attention", "false"), ("train.trainable", "all"))),
    "f_text": ("t2v", "t2i_v", ()),
}
DONE = "DONE"


def render_split(num_clips: int, resolution: int, num_frames: int, split: int = 0) -> tuple[np.ndarray, list[str]]:
    """The moving-shapes split's attribute draws (`default_rng([0, split, i])`, as `MovingShapes`) rendered
    -> uint8 (N, T, R, R, 3) and captions."""
    from emu_jax.demo import shapes

    frames = np.empty((num_clips, num_frames, resolution, resolution, 3), np.uint8)
    captions = []
    for i in range(num_clips):
        attrs = shapes.sample_attributes(np.random.default_rng([0, split, i]))
        frames[i] = shapes.render_clip(attrs, num_frames, resolution)
        captions.append(shapes.caption(attrs))
    return frames, captions


def in_memory_loader(frames: np.ndarray, captions: list[str], src_fps: float):
    """A `make_loader` over in-memory clips: the pipeline's clip timing, tokenisation and batch keys, as a
    checkpointable grain iterator."""
    import grain

    from emu_jax.data import clips, pipeline

    def make_loader(cfg_data, *, split, seed, tokenizer, batch_size, **_):
        del split
        n_src = frames.shape[1]

        def example(index, i):
            rng = np.random.default_rng([seed, index])
            times = clips.clip_times(
                duration=n_src / src_fps,
                src_fps=src_fps,
                num_frames=int(cfg_data.num_frames),
                fps=cfg_data.fps,
                rng=rng,
            )
            idx = np.clip(np.round(times * src_fps).astype(int), 0, n_src - 1)
            ids, mask = pipeline.tokenize(tokenizer, captions[i], int(cfg_data.text_max_length))
            return {
                "video": clips.to_unit_range(frames[i][idx]),
                "text_ids": ids,
                "text_mask": mask,
                "caption": captions[i],
            }

        ds = grain.MapDataset.source(list(range(len(captions)))).shuffle(seed=seed)
        ds = ds.map_with_index(example).batch(batch_size, drop_remainder=True).repeat(None)
        return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=8, prefetch_buffer_size=8)))

    return make_loader


def run_arm(
    workdir: str | pathlib.Path,
    arm: str,
    out: str | pathlib.Path,
    *,
    size: str = "default",
    num_clips: int = 4096,
    num_prompts: int = 200,
    wait_s: float = 3600.0,
) -> dict:
    """Trains (and for F arms evaluates) one arm; writes `out/ARM.json` and returns it."""
    from emu_jax.config import apply_override
    from emu_jax.demo import evaluate
    from emu_jax.demo.recipe import stage_config
    from emu_jax.training.loop import train

    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {sorted(ARMS)}")
    workdir, out = pathlib.Path(workdir).absolute(), pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = workdir / "ablations"
    stage, parent, overrides = ARMS[arm]
    scale_file = workdir / "vae" / "latent_scale.json"
    if not scale_file.is_file():
        raise FileNotFoundError(f"{scale_file} is missing: run the recipe's vae stage (and start t2i) first")
    cfg = stage_config(stage, size, workdir, latent_scale=json.loads(scale_file.read_text()), overrides=overrides)
    cfg.train.init_from = str(workdir / "vae" if parent == "vae" else runs / parent)
    cfg.train.save_every = cfg.train.steps
    apply_override(cfg, "train.log_every", str(min(100, cfg.train.steps)))
    t0 = time.time()
    frames, captions = render_split(num_clips, cfg.dataset.resolution, cfg.dataset.num_frames)
    record = {
        "arm": arm,
        "stage": stage,
        "overrides": [list(o) for o in overrides],
        "steps": cfg.train.steps,
        "batch": cfg.train.batch_size,
        "render_s": round(time.time() - t0, 1),
    }
    waited = 0.0
    while parent != "vae" and not (runs / parent / DONE).exists():  # the parent arm runs in another process
        if waited > wait_s:
            raise TimeoutError(f"{arm}: parent arm {parent} did not finish within {wait_s:.0f} s")
        time.sleep(2.0)
        waited += 2.0
    t1 = time.time()
    record["last_metrics"] = train(cfg, runs / arm, make_loader=in_memory_loader(frames, captions, cfg.dataset.fps))
    record["train_s"] = round(time.time() - t1, 1)
    (runs / arm / DONE).write_text("ok")
    if stage == "t2v":
        t2 = time.time()
        report = evaluate.run(str(runs / arm), num_prompts=num_prompts, seed=1234, batch_size=100, ceiling_clips=0)
        report.pop("per_prompt")
        record["eval"], record["eval_s"] = report, round(time.time() - t2, 1)
    import jax

    record["device"] = str(jax.devices()[0])
    (out / f"{arm}.json").write_text(json.dumps(record, indent=1, default=str))
    return record


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(
            f"usage: python -m emu_jax.demo.ablations WORKDIR ARM OUTDIR   (ARM in {sorted(ARMS)}; "
            "env ABLATION_SIZE=tiny, ABLATION_CLIPS, ABLATION_PROMPTS for a dry run)"
        )
    rec = run_arm(
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        size=os.environ.get("ABLATION_SIZE", "default"),
        num_clips=int(os.environ.get("ABLATION_CLIPS", "4096")),
        num_prompts=int(os.environ.get("ABLATION_PROMPTS", "200")),
    )
    print(json.dumps({k: v for k, v in rec.items() if k != "eval"}, default=str))
