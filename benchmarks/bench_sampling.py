"""Videos per minute on this CPU: our jitted batch sampler vs a Python step loop vs diffusers' TextToVideoSD.

Measured side by side in one run, in interleaved rounds (benchmarks/rounds.py: every variant once per
round, order reversed on every other round; median and min of `--rounds` >= 5 after a warm-up that
compiles), with the machine load at start and end:
  1. the emu_jax Pipeline (keyframe + video + decode) on configs/tiny.py's random t2v model, with
     progress chunks of 1 step, S/10 steps (the default) and all S steps in one call;
  2. the same stages driven from a Python loop that calls a jitted single step (async dispatch);
  3. diffusers `TextToVideoSDPipeline` around a random `UNet3DConditionModel` of matching size
     (same steps, resolution, frames, DDIM, CFG 7.5, VAE decode), torch with 2 threads, beside our
     full pipeline and our video stage alone. Both U-Nets' parameter counts are printed; ours runs
     with `temporal_kernel=5` and `temporal_cross_attention=True` (as bench_unet.py), which brings
     them within 5% (the run refuses a larger gap).
Not a test (pytest does not collect it).

    JAX_PLATFORMS=cpu python benchmarks/bench_sampling.py [--steps 10] [--batch 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax.config import load_config
from emu_jax.models.emu import EmuConfig, EmuModel
from emu_jax.sampling import stages
from emu_jax.sampling.loading import LoadedModel
from emu_jax.sampling.pipeline import Pipeline
from emu_jax.sampling.settings import Settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rounds import interleaved_rounds, load_line, param_gap  # noqa: E402

MAX_PARAM_GAP = 0.05


def tiny_f() -> LoadedModel:
    cfg = load_config("configs/tiny.py:t2v")
    # Matched to diffusers' UNet3DConditionModel in parameter count (see the module docstring).
    cfg.model.unet.temporal_kernel = 5
    cfg.model.unet.temporal_cross_attention = True
    model = EmuModel(EmuConfig.from_dict(cfg.model.to_dict()))
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0)))
    schedule, prediction = _schedule(cfg)
    return LoadedModel("<tiny t2v>", {}, model, params, "t2v", schedule, prediction)


def _schedule(cfg):
    from emu_jax.diffusion.schedules import make_schedule

    d = cfg.diffusion
    return make_schedule(
        d.beta_schedule, d.num_train_steps, d.beta_start, d.beta_end, d.zero_terminal_snr
    ), d.prediction


def python_loop(pipe: Pipeline, prompts: list[str]):
    """Keyframe + video + decode with a jitted single step called once per step from Python."""
    m, plan, sched = pipe.main.model, pipe.plan, pipe.main.schedule
    one = {
        name: jax.jit(
            lambda p, cb, st, k, s, i, name=name: stages.denoise_steps(
                m,
                p,
                plan,
                sched,
                cb,
                st,
                k,
                s,
                i,
                i + 1,
                mode=stages.STAGE_MODES[name][0],
                image_mode=stages.STAGE_MODES[name][1],
            )
        )
        for name in ("keyframe", "video")
    }
    tokens = {k: jnp.asarray(v) for k, v in m.tokenize_all(prompts).items()}
    idx = jnp.arange(len(prompts), dtype=jnp.int32)
    scales = pipe._scales  # noqa: SLF001 - same guidance values as the pipeline

    def run():
        latents = []
        for name in ("keyframe", "video"):
            extra = () if name == "keyframe" else (latents[0],)
            cb, st, k = pipe._fns[name + "_start"](pipe.params, tokens, pipe._uncond["main"], jnp.int32(0), idx, *extra)
            for i in range(plan.num_steps):
                st = one[name](pipe.params, cb, st, k, scales[name], i)
            latents.append(stages.finish(plan, sched, st))
        return np.asarray(pipe._fns["decode"](pipe.params, jnp.concatenate(latents, axis=1)))

    return run


def diffusers_t2v(steps: int, batch: int, frames: int, size: int, ctx_len: int, ctx_dim: int):
    """A random tiny TextToVideoSDPipeline matching configs/tiny.py's U-Net / VAE; returns (run, unet params)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    torch.set_num_threads(2)
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"),
        cross_attention_dim=ctx_dim,
        attention_head_dim=4,  # diffusers' naming issue: the number of heads (ours: 64 channels / head_dim 16)
        norm_num_groups=8,
    ).eval()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=8,
    ).eval()
    sched = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        prediction_type="v_prediction",
        clip_sample=False,
    )
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    emb = torch.randn(batch, ctx_len, ctx_dim)
    neg = torch.randn(batch, ctx_len, ctx_dim)

    def run():
        with torch.no_grad():
            return pipe(
                prompt_embeds=emb,
                negative_prompt_embeds=neg,
                num_frames=frames,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=7.5,
                output_type="np",
            ).frames

    return run, sum(p.numel() for p in unet.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5 for a reported number)")
    ap.add_argument("--skip-diffusers", action="store_true")
    args = ap.parse_args()
    print(load_line("at start"), flush=True)
    f = tiny_f()
    cfg = f.model.config
    prompts = [f"a red circle moving {i}" for i in range(args.batch)]
    print(
        f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}; tiny F: {cfg.resolution}px, "
        f"{cfg.num_frames} frames, {args.steps} DDIM steps, batch {args.batch}; U-Net params "
        f"{sum(x.size for x in jax.tree.leaves(f.params['unet'])):,}"
    )
    pipe = Pipeline(f, Settings(num_steps=args.steps), batch_size=args.batch, progress=False)

    def with_chunk(chunk):
        def run():
            pipe.chunk_steps = chunk  # read at run time: same executables for every chunk size
            return list(pipe.run(prompts))

        return run

    video_only = jax.jit(
        lambda p, tok, kf: stages.generate_video(
            f.model, p, tok, kf, stages.item_keys(0, jnp.arange(args.batch)), f.schedule, pipe.plan
        )
    )
    tok = {k: jnp.asarray(v) for k, v in f.model.tokenize_all(prompts).items()}
    kf = jnp.zeros((args.batch, 1, cfg.latent_size, cfg.latent_size, 4))
    variants = {
        "ours: scan, 1 call per stage": with_chunk(args.steps),
        "ours: scan, chunks of S/10 (default)": with_chunk(None),
        "ours: scan, chunks of 1 step": with_chunk(1),
        "ours: python loop of a jitted step": python_loop(pipe, prompts),
        "ours: video stage only (no keyframe/decode)": lambda: np.asarray(video_only(pipe.params, tok, kf)),
    }
    if not args.skip_diffusers:
        run, n = diffusers_t2v(
            args.steps, args.batch, cfg.num_frames, cfg.resolution, cfg.text[0].max_length, cfg.unet.context_dims[0]
        )
        ours = sum(x.size for x in jax.tree.leaves(f.params["unet"]))
        print(
            f"diffusers UNet3DConditionModel params {n:,} (gap {param_gap(ours, n):.1%}, "
            f"torch {__import__('torch').get_num_threads()} threads)"
        )
        if param_gap(ours, n) > MAX_PARAM_GAP:
            raise SystemExit(f"U-Net parameter counts differ by more than {MAX_PARAM_GAP:.0%}: not a matched config")
        variants["diffusers TextToVideoSD (2-way CFG + decode)"] = run
    rows = interleaved_rounds(variants, args.rounds)
    ref = rows["ours: scan, 1 call per stage"][0]
    print(f"\n{'variant':46s} {'median s':>9s} {'min s':>7s} {'videos/min':>11s} {'time vs scan':>13s}")
    for label, (med, best) in rows.items():
        print(f"{label:46s} {med:9.3f} {best:7.3f} {args.batch / med * 60:11.1f} {med / ref:13.2f}x")
    print(
        "\nvideos/min from the median. Our Pipeline runs keyframe (2 x 1-frame rows) + video "
        "(3 x 8-frame rows) per step;\ndiffusers runs 2 x 8-frame rows per step."
    )
    print(load_line("at end"))


if __name__ == "__main__":
    main()
