"""The demo's analyser as `emu-video ablate` metrics (the library never imports the demo wing; a study
names these as `eval = {"metrics": ["emu_jax.demo.ablate_metrics:all_correct"]}`).

Items are held-out attribute draws (`evaluate.prompt_set(num_items, seed)`), so the study's own prompt
list is not used; each item scores 1 when the analyser reads every prompted attribute from its video.
The `*_16fps` metrics score the 16 fps video the shipped I makes from the arm's F video (a study of F arms
then sees its final output; I itself is not retrained per arm), `smooth_16fps` whether it jumps where F did not.

`fid_vae` / `fvd_vae` are set-level stand-ins for FID / FVD (the real Inception / I3D weights cannot be
downloaded here): Fréchet distances to held-out dataset clips in the feature space of the shipped demo
model's VAE encoder (posterior means average-pooled), per frame and per video.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from emu_jax.demo import analyse, evaluate, shapes

DEMO_MODEL = pathlib.Path(__file__).parents[1] / "assets" / "demo_model"
SHIPPED_I = DEMO_MODEL / "interp"  # the 16 fps metrics interpolate every arm's F video with it
REFERENCE_CLIPS = 256


def from_shipped_model() -> dict:
    """Study overrides that start every arm from the shipped model, with its VAE's latent scale."""
    import json

    vae = json.loads((DEMO_MODEL / "emu_jax.json").read_text())["model"]["vae"]
    return {
        "train.init_from": str(DEMO_MODEL),
        "model.vae.scaling_factor": vae["scaling_factor"],
        "model.vae.shift_factor": vae["shift_factor"],
    }


def prompts(num_items: int, seed: int) -> list[str]:
    """The captions these metrics sample (held-out draws): `emu-video ablate --sweep` needs no --prompts."""
    return [shapes.caption(w) for w in evaluate.prompt_set(int(num_items), int(seed))]


def _analysed(ctx, at_16fps: bool = False) -> list[tuple[dict, dict]]:
    """(reading, per-attribute score) of each item's video, cached on ctx: several metrics read one sampling.
    Background, colour and shape are read on F's first frame (the keyframe), motion and consistency on F's
    video, or with `at_16fps` on the shipped I's 16 fps video of it (its reading adds F's `f_jump_ratio`)."""
    cache = ctx.__dict__.setdefault("_demo_readings", {})
    n, seed = int(ctx.settings["num_items"]), int(ctx.settings["seed"])
    if (n, seed, at_16fps) not in cache:
        texts, out = prompts(n, seed), []
        final = ctx.sample(texts, interp=str(SHIPPED_I)) if at_16fps else None  # also samples F's videos
        for i, (w, v) in enumerate(zip(evaluate.prompt_set(n, seed), ctx.sample(texts))):
            key, vid = analyse.analyse_video(v[:1]), analyse.analyse_video(v if final is None else final[i])
            reading = {**vid, **{k: key[k] for k in ("background", "color", "shape")}}  # as evaluate.score_samples
            if final is not None:
                reading["f_jump_ratio"] = analyse.analyse_video(v)["jump_ratio"]
            out.append((reading, analyse.score(reading, w.to_dict())))
        cache[(n, seed, at_16fps)] = out
    return cache[(n, seed, at_16fps)]


def all_correct(ctx, at_16fps: bool = False) -> np.ndarray:
    """Per item: 1.0 when every prompted attribute is read back from the sample, else 0.0."""
    return np.asarray([float(all(s.values())) for _, s in _analysed(ctx, at_16fps)])


def attribute_accuracy(ctx) -> np.ndarray:
    """Per item: the fraction of prompted attributes read back from the sample."""
    return np.asarray([float(np.mean(list(s.values()))) for _, s in _analysed(ctx)])


def looks_correct(ctx) -> np.ndarray:
    """Per item: 1.0 when background, colour and shape are all read back (a keyframe-only T2I arm scores this)."""
    return np.asarray([float(s["background"] and s["color"] and s["shape"]) for _, s in _analysed(ctx)])


def direction(ctx, at_16fps: bool = False) -> np.ndarray:
    """Per item: 1.0 when the video moves in the prompted direction."""
    return np.asarray([float(s["direction"]) for _, s in _analysed(ctx, at_16fps)])


def consistent(ctx, at_16fps: bool = False) -> np.ndarray:
    """Per item: 1.0 when the analyser finds one shape, colour and size throughout the video."""
    return np.asarray([float(bool(r["consistent"])) for r, _ in _analysed(ctx, at_16fps)])


def smooth_16fps(ctx) -> np.ndarray:
    """Per item: 1.0 unless the 16 fps video jumps (a step over JUMP_LIMIT x its median) where F's video does not."""
    limit = analyse.JUMP_LIMIT
    return np.asarray(
        [float(not (r["jump_ratio"] > limit and not r["f_jump_ratio"] > limit)) for r, _ in _analysed(ctx, True)]
    )


def _at_16fps(fn):
    """`fn` scored on the shipped I's 16 fps video of the arm's F video (the keyframe attributes stay F's)."""

    def metric(ctx) -> np.ndarray:
        return fn(ctx, at_16fps=True)

    metric.__name__ = metric.__qualname__ = f"{fn.__name__}_16fps"
    metric.__doc__ = f"{fn.__doc__} On the 16 fps video."
    return metric


all_correct_16fps, direction_16fps, consistent_16fps = (_at_16fps(f) for f in (all_correct, direction, consistent))

for _fn in (
    all_correct,
    attribute_accuracy,
    looks_correct,
    direction,
    consistent,
    smooth_16fps,
    all_correct_16fps,
    direction_16fps,
    consistent_16fps,
):
    _fn.better, _fn.prompts = "higher", prompts


@functools.lru_cache(maxsize=1)
def _encoder():
    import jax

    from emu_jax.sampling.loading import load_model

    loaded = load_model(str(DEMO_MODEL))
    return loaded.params, jax.jit(loaded.model.encode_video)


def vae_latents(videos_unit) -> np.ndarray:
    """(N, T, H, W, 3) pixels in [-1, 1] -> the demo VAE's posterior means (N, T, h, w, C)."""
    params, encode = _encoder()
    return np.concatenate(
        [
            np.asarray(encode(params, np.asarray(videos_unit[i : i + 32], np.float32)))
            for i in range(0, len(videos_unit), 32)
        ]
    )


def pooled(z, pool: int) -> np.ndarray:
    """Latents (N, T, h, w, C) average-pooled to a pool x pool grid -> (N, T, pool * pool * C)."""
    n, t, h, w, c = z.shape
    return z.reshape(n, t, pool, h // pool, pool, w // pool, c).mean(axis=(3, 5)).reshape(n, t, -1)


def vae_features(videos_unit, pool: int) -> np.ndarray:
    """(N, T, H, W, 3) pixels in [-1, 1] -> (N, T, pool * pool * C) pooled posterior means."""
    return pooled(vae_latents(videos_unit), pool)


def _latents(ctx) -> tuple[np.ndarray, np.ndarray]:
    """(sampled, reference) latents, encoded once per arm for both stand-ins. The reference is held-out dataset
    clips at F's frame count and rate (other draws than the prompts'); a keyframe-only arm gets their first frames."""
    from emu_jax.data import clips

    if "_demo_latents" not in ctx.__dict__:
        n, seed, m = int(ctx.settings["num_items"]), int(ctx.settings["seed"]), ctx.cfg.model
        fake = clips.to_unit_range(ctx.sample(prompts(n, seed)))
        real, _ = evaluate.real_clips(
            REFERENCE_CLIPS, seed + 1, resolution=m.resolution, num_frames=m.num_frames, fps=m.fps
        )
        ctx.__dict__["_demo_latents"] = (vae_latents(fake), vae_latents(real[:, : fake.shape[1]]))
    return ctx.__dict__["_demo_latents"]


def fid_vae(ctx):
    """Frame-level: every frame a (4 x 4 x C) feature; Fréchet distance of the sampled frames to the reference's."""
    fake, real = _latents(ctx)
    return pooled(fake, 4), pooled(real, 4)


def fvd_vae(ctx):
    """Video-level: each video one feature, its frames' (2 x 2 x C) features in order (position over time)."""
    fake, real = (pooled(z, 2) for z in _latents(ctx))
    return fake.reshape(len(fake), 1, -1), real.reshape(len(real), 1, -1)


for _fn in (fid_vae, fvd_vae):
    _fn.better, _fn.level, _fn.prompts = "lower", "set", prompts
