"""Per-item metrics: a name in `REGISTRY` or a `module:function` string (how the demo wing plugs in its
analyser without the library importing it).

A metric is `fn(ctx: EvalContext) -> array (num_items,)`, one value per evaluation item, lower or higher
better as its `better` attribute says ("lower" by default); or set-level (`is_set_level`: features of
each item and of a reference set, scored by their Fréchet distance). Per-item values are what make paired
bootstrap comparisons possible: item i is the same clip with the same noise in every arm. A metric that
samples prompts of its own says so with a `prompts(num_items, seed) -> list[str]` attribute, which an
inference sweep then uses when it is given no prompts.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any, Callable

import numpy as np

from emu_jax.errors import UserError

REGISTRY: dict[str, Callable] = {}


def is_set_level(fn: Callable) -> bool:
    """A set-level metric (`fn.level == "set"`, e.g. FID / FVD) returns `(fake (N, K, D), real (M, K', D))`:
    K feature vectors per item (frames, or 1 per video) and a reference set; its value is the Fréchet
    distance of the two, so it has no per-item values and is bootstrapped over items instead."""
    return getattr(fn, "level", "item") == "set"


def frechet_to(real_MKD) -> Callable:
    """`distance(fake (n, K, D))`: the Fréchet distance of the fake items' features to the reference set's."""
    from emu_jax.metrics.frechet import frechet_distance_symmetric, gaussian_stats

    d = real_MKD.shape[-1]
    mu, sigma = gaussian_stats(real_MKD.reshape(-1, d))
    return lambda fake_NKD: frechet_distance_symmetric(*gaussian_stats(fake_NKD.reshape(-1, d)), mu, sigma)


def register(name: str, better: str = "lower"):
    def wrap(fn):
        fn.better = better
        REGISTRY[name] = fn
        return fn

    return wrap


def resolve(name: str) -> Callable:
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UserError(f"metric {name!r}: {e}") from None
        if not callable(fn):
            raise UserError(f"metric {name!r} is not a function")
        return fn
    raise UserError(f"unknown metric {name!r}; choose from {sorted(REGISTRY)} or give MODULE:FUNCTION")


@dataclasses.dataclass
class EvalContext:
    """What a metric may read: the arm's config, its checkpoint (a training workdir or exported model),
    and the study's eval settings (split, num_items, seed, draws, prompts, ...)."""

    cfg: Any
    checkpoint: str
    settings: dict

    @functools.cached_property
    def params(self):
        from emu_jax import model_folder

        return model_folder.load_checkpoint(self.checkpoint)[1]

    def _pipeline(self, interp: str | None = None):
        """The arm's sampling pipeline, with the interpolation model `interp` loaded when given (one per I)."""
        from emu_jax.sampling.pipeline import Pipeline

        pipes = self.__dict__.setdefault("_pipelines", {})
        if interp not in pipes:
            pipes[interp] = Pipeline.from_checkpoint(
                self.checkpoint,
                interp_checkpoint=interp,
                use_interp=interp is not None,
                overrides=dict(self.settings.get("sampling") or {}),
                batch_size=int(self.settings.get("batch_size") or 4),
                progress=False,
            )
        return pipes[interp]

    def sample(self, prompts=None, interp: str | None = None) -> np.ndarray:
        """uint8 (N, T, H, W, 3) videos of `prompts` (default: the study's), keyframe -> F's video (a t2i
        checkpoint gives T = 1); with `interp` (an interpolation model's folder) the (N, S, H, W, 3) videos
        it makes from them, F's videos of that run cached too. Item i's noise depends only on (eval seed, i),
        so arms see the same noise. Cached per prompt list: several metrics score one sampling run."""
        prompts = list(self.settings.get("prompts") or []) if prompts is None else list(prompts)
        if not prompts:
            raise UserError("sample-based metrics need eval prompts (a list or a file of lines) in the study")
        key = tuple(prompts)
        cache = self.__dict__.setdefault("_samples", {})
        if (key, interp) not in cache:
            videos, interpolated = [], []
            for batch in self._pipeline(interp).run(
                prompts, seed=int(self.settings["seed"]), interpolate=interp is not None
            ):
                videos += [s.video if s.video is not None else s.keyframe[None] for s in batch]
                interpolated += [s.interpolated for s in batch]
            cache[(key, None)] = np.stack(videos)
            if interp is not None:
                cache[(key, interp)] = np.stack(interpolated)
        return cache[(key, interp)]


@register("denoise_loss", better="lower")
def denoise_loss(ctx: EvalContext) -> np.ndarray:
    """The arm's diffusion loss on held-out clips, per clip, averaged over `draws` fixed (timestep, noise)
    draws. Item i's draws depend only on (seed, i) and condition dropout is off, so every arm sees the
    same noise and an untrained arm is clearly worse. Needs no weights beyond the arm's own."""
    import jax
    import jax.numpy as jnp

    from emu_jax import sharding
    from emu_jax.data.pipeline import make_loader
    from emu_jax.training import loop
    from emu_jax.training.step import loss_fn

    cfg, s = ctx.cfg, ctx.settings
    n, draws = int(s["num_items"]), int(s["draws"])
    _, schedule, spec = loop.build(cfg)
    spec = dataclasses.replace(spec, drop_text=0.0, drop_image=0.0, drop_both=0.0)
    run = loop.make_run(cfg, sharding.make_mesh({"data": 1}, jax.devices()[:1]))
    loader = make_loader(
        cfg.data,
        split=s["split"],
        seed=int(s["seed"]),
        batch_size=1,
        num_epochs=None,
        shuffle=False,
        random_clip=False,
        tokenizer=run.model.tokenizers[0],
    )
    params = jax.device_put(ctx.params, jax.devices()[0])
    rng = jax.random.key(int(s["seed"]))
    with sharding.use_mesh(run.mesh, run.rules):

        @jax.jit
        def item_loss(p, batch, i):
            # Draw d of item i: fold_in(fold_in(seed, d), i) inside loss_fn; independent of the arm.
            return (
                sum(
                    loss_fn(run.model, schedule, spec, p, batch, jax.random.fold_in(rng, d), i[None])[0]
                    for d in range(draws)
                )
                / draws
            )

        batches = loop._batches(iter(loader), run.model, run.mesh)
        out = [float(item_loss(params, next(batches), jnp.asarray(i))) for i in range(n)]
    return np.asarray(out)


@register("clip_score", better="higher")
def clip_score(ctx: EvalContext) -> np.ndarray:
    """CLIP-SIM of each prompt's sampled video (emu_jax.metrics), with the CLIP weights in eval `clip`."""
    from emu_jax.metrics import compute

    if not ctx.settings.get("clip"):
        raise UserError("metric 'clip_score' needs eval setting clip = a transformers CLIPModel folder")
    nets = compute.load_nets(clip=ctx.settings["clip"])
    return compute.clip_scores(nets.clip, ctx.sample(), ctx.settings["prompts"])


def _real_videos(ctx: EvalContext) -> np.ndarray:
    from emu_jax.metrics.folders import read_folder

    cache = ctx.__dict__.setdefault("_real", {})
    if "videos" not in cache:
        cache["videos"] = read_folder(ctx.settings["real"])[1]
    return cache["videos"]


@register("fid", better="lower")
def fid(ctx: EvalContext):
    """FID: pytorch-fid Inception pool3 features of every frame of the sampled videos and of the eval
    `real` folder's videos, with the Inception weights in eval `fid_weights`."""
    from emu_jax.metrics import compute

    net = compute.load_nets(fid_weights=ctx.settings["fid_weights"]).inception
    fake, real = ctx.sample(), _real_videos(ctx)
    return (
        compute.fid_features(net, fake).reshape(fake.shape[:2] + (-1,)),
        compute.fid_features(net, real).reshape(real.shape[:2] + (-1,)),
    )


@register("fvd", better="lower")
def fvd(ctx: EvalContext):
    """FVD (StyleGAN-V protocol): I3D features of each video's first 16 frames, fake against eval `real`,
    with the I3D weights in eval `fvd_weights` ("packaged" or a pytorch-i3d state dict)."""
    from emu_jax.metrics import compute, i3d

    fake, real = ctx.sample(), _real_videos(ctx)
    if min(fake.shape[1], real.shape[1]) < i3d.FVD_FRAMES:
        raise UserError(f"fvd needs >= {i3d.FVD_FRAMES} frames; sampled {fake.shape[1]}, real {real.shape[1]}")
    net = compute.load_nets(fvd_weights=ctx.settings["fvd_weights"]).i3d
    return compute.fvd_features(net, fake)[:, None], compute.fvd_features(net, real)[:, None]


fid.level = fvd.level = "set"
# What each set-level metric needs in the study's eval settings (checked before any training).
NEEDS = {"fid": ("fid_weights", "real"), "fvd": ("fvd_weights", "real"), "clip_score": ("clip",)}
