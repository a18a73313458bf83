"""Sampling entry point: text -> keyframe -> video -> interpolated video -> pixels (SPEC "Inference path").

    pipe = Pipeline.from_checkpoint("workdir/t2v", batch_size=4, num_steps=50)
    for batch in pipe.run(["a red ball bouncing"], seed=0):
        for s in batch:
            s.keyframe, s.video, s.interpolated  # uint8 (H, W, 3), (T, H, W, 3), (S, H, W, 3) or None

The stages are the pure functions of `emu_jax.sampling_stages` (re-exported
here: `generate_keyframe`, `generate_video`, `interpolate`, `decode`). The
`Pipeline` owns the models, params, schedules and one set of jitted functions
per stage, compiled once for the (padded) batch shape and reused for every
batch; it runs each stage's denoising loop in chunks of steps and reports
stage / step / ETA to stderr between chunks (no host callback inside the loop,
so executables stay cacheable). The batch is sharded over the mesh's data axes.
Every stage's output is checked on the host: NaN / Inf raises
`NonFiniteError` naming the stage, so no black video reaches the disk.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax import checkpoint_io, conditioning, sharding
from emu_jax import sampling_stages as stages
from emu_jax.data import clips
from emu_jax.diffusion import guidance as guidance_lib
from emu_jax.diffusion import samplers
from emu_jax.diffusion.schedules import Schedule, make_schedule
from emu_jax.sampling_stages import decode, generate_keyframe, generate_video, interpolate, item_keys  # noqa: F401

# A checkpoint without a "diffusion" section (e.g. a converted model) gets the recipe's defaults.
DEFAULT_DIFFUSION = dict(beta_schedule="scaled_linear", num_train_steps=1000, beta_start=0.00085, beta_end=0.012,
                         zero_terminal_snr=True, prediction="v")
VIDEO_TASKS = ("t2v", "t2i")


class NonFiniteError(ValueError):
    """A stage produced NaN / Inf; raised before anything of that batch is written."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sampler and guidance settings (SPEC defaults); a checkpoint's "sampling" section overrides them."""

    method: str = "ddim"
    num_steps: int = 250
    spacing: str = "trailing"
    eta: float = 0.0
    guidance_keyframe: float = 7.5
    guidance_image: float = 2.0
    guidance_text: float = 7.5
    guidance_rescale: float = 0.0
    interp_aug_level: int = 100

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, **overrides: Any) -> "Settings":
        """Known keys of `d` (unknown ones ignored), then the non-None `overrides` (unknown ones rejected)."""
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ValueError(f"unknown sampling settings {bad}; allowed: {sorted(names)}")
        vals = {k: v for k, v in dict(d or {}).items() if k in names}
        vals.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**vals)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, schedule: Schedule, prediction: str) -> None:
        """ValueError naming the bad value, before anything compiles."""
        samplers.validate_sampling_args(
            schedule, method=self.method, num_steps=self.num_steps, prediction=prediction, spacing=self.spacing,
            eta=self.eta, guidance_mode="two_condition",
            guidance_scales={"image": self.guidance_image, "text": self.guidance_text},
            rescale_phi=self.guidance_rescale)
        guidance_lib.validate_guidance_scale("keyframe", self.guidance_keyframe)
        lvl = self.interp_aug_level
        if isinstance(lvl, bool) or not isinstance(lvl, (int, np.integer)) or not 0 <= lvl <= schedule.num_train_steps:
            raise ValueError(f"interp_aug_level must be an integer in [0, {schedule.num_train_steps}], got {lvl!r}")

    def plan(self, schedule: Schedule, prediction: str) -> samplers.SamplingPlan:
        return samplers.make_plan(schedule, method=self.method, num_steps=self.num_steps, prediction=prediction,
                                  spacing=self.spacing, eta=self.eta)


@dataclasses.dataclass
class LoadedModel:
    """One checkpoint: its meta, `EmuModel`, params (host numpy until the Pipeline places them) and schedule."""

    path: str
    meta: dict
    model: Any
    params: Any
    task: str
    schedule: Schedule
    prediction: str
    layout: conditioning.SlotLayout | None = None


def checkpoint_task(meta: Mapping[str, Any], config: Any) -> str:
    """'t2i' | 't2v' | 'interp': a training run's task, else guessed from the U-Net's inputs."""
    if meta.get("task"):
        return str(meta["task"])
    if config.unet.cond_level_embed:
        return "interp"
    return "t2v" if config.unet.temporal and config.unet.cond_channels else "t2i"


def describe_checkpoint(path: str) -> tuple[dict, Any, str, Schedule, str]:
    """(meta, EmuConfig, task, schedule, prediction) from `emu_jax.json` alone: cheap, for validation."""
    from emu_jax.models.emu import EmuConfig

    meta = checkpoint_io.load_meta(str(path))
    config = EmuConfig.from_dict(checkpoint_io.model_config_dict(meta))
    d = {**DEFAULT_DIFFUSION, **dict(meta.get("diffusion") or {})}
    schedule = make_schedule(d["beta_schedule"], int(d["num_train_steps"]), float(d["beta_start"]),
                             float(d["beta_end"]), bool(d["zero_terminal_snr"]))
    return meta, config, checkpoint_task(meta, config), schedule, str(d["prediction"])


def load_model(path: str) -> LoadedModel:
    """Read a checkpoint (exported model or training workdir; EMA weights preferred)."""
    from emu_jax.models.emu import EmuModel

    meta, config, task, schedule, prediction = describe_checkpoint(path)
    meta, params = checkpoint_io.load_checkpoint(str(path), prefer_ema=True)
    layout = conditioning.SlotLayout(**meta["slots"]) if task == "interp" and meta.get("slots") else (
        conditioning.SlotLayout() if task == "interp" else None)
    return LoadedModel(str(path), meta, EmuModel(config, root=path), params, task, schedule, prediction, layout)


def find_interp_checkpoint(path: str, interp_checkpoint: str | None) -> str | None:
    """The interpolation model: `interp_checkpoint`, else `<path>/interp/` when it holds one, else None."""
    if interp_checkpoint:
        return interp_checkpoint
    sub = os.path.join(path, "interp")
    return sub if os.path.isfile(os.path.join(sub, checkpoint_io.META_FILE)) else None


def validate_prompts(prompts: Sequence[str]) -> list[str]:
    """Non-empty list of non-empty strings, else ValueError naming the bad one."""
    if isinstance(prompts, str) or not len(prompts):
        raise ValueError("give at least one prompt (a list of strings)")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is empty ({p!r}); every prompt needs some text")
    return list(prompts)


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (default ~/.cache/emu_jax/jax) unless one is set."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = path or os.path.join(base, "emu_jax", "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def data_mesh(batch_size: int, devices: Sequence[Any] | None = None) -> jax.sharding.Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over the most devices whose count divides the batch."""
    devices = list(jax.devices() if devices is None else devices)
    d = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
    return sharding.make_mesh({"data": d, "fsdp": 1, "tensor": 1}, devices[:d])


class Progress:
    """Prints `stage: step i/S, elapsed, ETA` lines to a stream (stderr by default)."""

    def __init__(self, enabled: bool = True, stream: Any = None):
        self.enabled, self.stream = enabled, stream or sys.stderr

    def report(self, label: str, done: int, total: int, elapsed: float) -> None:
        if not self.enabled:
            return
        eta = elapsed / done * (total - done) if done else float("nan")
        print(f"{label}: step {done}/{total}  {elapsed:.1f}s elapsed, ETA {eta:.1f}s", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)


def check_finite(x: np.ndarray, stage: str, indices: Sequence[int]) -> None:
    """NonFiniteError naming the stage and prompt indices whose rows (B, ...) hold NaN / Inf."""
    bad = [int(i) for i, row in zip(indices, x) if not np.isfinite(row).all()]
    if bad:
        raise NonFiniteError(f"stage {stage!r} produced NaN/Inf values for prompt index(es) {bad}; "
                             "nothing of this batch is written")


@dataclasses.dataclass
class Sample:
    """One generated item: uint8 pixels, what ran, and the batch's seconds per stage."""

    index: int
    prompt: str
    keyframe: np.ndarray  # (H, W, 3)
    video: np.ndarray | None  # (T, H, W, 3) at fps
    fps: int
    interpolated: np.ndarray | None = None  # (S, H, W, 3) at interp_fps
    interp_fps: int | None = None
    latents: dict = dataclasses.field(default_factory=dict)
    stages: list = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)


class Pipeline:
    """Models + params + schedules + jitted stage functions; `run(prompts)` yields finished batches.

    `main` is model F (task 't2v'; 't2i' gives keyframes only); `interp` the
    optional model I. Everything is validated here, before any compile; the
    first batch compiles each stage once (reported with its time), later
    batches of the same `batch_size` reuse the executables.
    """

    def __init__(self, main: LoadedModel, settings: Settings, *, interp: LoadedModel | None = None,
                 interp_settings: Settings | None = None, batch_size: int = 1, negative_prompt: str | None = None,
                 devices: Sequence[Any] | None = None, progress: Progress | bool = True,
                 chunk_steps: int | None = None, compilation_cache: bool = True):
        if main.task not in VIDEO_TASKS:
            hint = "; pass it as the interpolation model (--interp-checkpoint)" if main.task == "interp" else ""
            raise ValueError(f"{main.path} is a {main.task!r} checkpoint; the main model must be one of "
                             f"{VIDEO_TASKS}{hint}")
        settings.validate(main.schedule, main.prediction)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if chunk_steps is not None and chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps!r}")
        self.main, self.settings, self.batch_size, self.chunk_steps = main, settings, batch_size, chunk_steps
        self.progress = progress if isinstance(progress, Progress) else Progress(bool(progress))
        self.negative_prompt = negative_prompt or None
        self.notes: list[str] = []
        if main.task == "t2i":
            self.notes.append("t2i checkpoint: keyframe only, no video")
            interp = None
        elif interp is None:
            self.notes.append(f"no interpolation model: the video is F's {main.model.config.num_frames} frames at "
                              f"{main.model.config.fps} fps; interpolation skipped")
        self.interp = interp
        self.interp_settings = interp_settings or settings
        if interp is not None:
            self._check_interp(interp)
        if compilation_cache:
            enable_compilation_cache()
        self.mesh = data_mesh(batch_size, devices)
        rep = sharding.replicated(self.mesh)
        self.plan = settings.plan(main.schedule, main.prediction)
        self.params = jax.device_put(main.params, rep)
        self._uncond = {"main": self._uncond_tokens(main.model)}
        self._scales = {
            "keyframe": {"text": jnp.float32(settings.guidance_keyframe)},
            "video": {"image": jnp.float32(settings.guidance_image), "text": jnp.float32(settings.guidance_text)}}
        if interp is not None:
            self.interp_plan = self.interp_settings.plan(interp.schedule, interp.prediction)
            self.interp_params = jax.device_put(interp.params, rep)
            self._uncond["interp"] = self._uncond_tokens(interp.model)
            s = self.interp_settings
            self._scales["interp"] = {"image": jnp.float32(s.guidance_image), "text": jnp.float32(s.guidance_text)}
        self._fns = self._build()
        self.compile_s: dict[str, float] = {}  # first-use compile (and start) seconds per stage

    @classmethod
    def from_checkpoint(cls, path: str, *, interp_checkpoint: str | None = None, use_interp: bool = True,
                        overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> "Pipeline":
        """Load F from `path` (and I from `interp_checkpoint` or `path/interp/`); settings = meta + overrides."""
        main = load_model(path)
        settings = Settings.from_dict(main.meta.get("sampling"), **dict(overrides or {}))
        interp, interp_settings = None, None
        ipath = find_interp_checkpoint(path, interp_checkpoint) if use_interp else None
        if ipath is not None:
            interp = load_model(ipath)
            interp_settings = Settings.from_dict(interp.meta.get("sampling"), **dict(overrides or {}))
        return cls(main, settings, interp=interp, interp_settings=interp_settings, **kwargs)

    # ---- set-up ------------------------------------------------------------------------------
    def _check_interp(self, interp: LoadedModel) -> None:
        if interp.task != "interp":
            raise ValueError(f"{interp.path} is a {interp.task!r} checkpoint, not an interpolation model")
        self.interp_settings.validate(interp.schedule, interp.prediction)
        fc, ic, lay = self.main.model.config, interp.model.config, interp.layout
        if (fc.latent_size, fc.unet.in_channels) != (ic.latent_size, ic.unet.in_channels):
            raise ValueError(f"interpolation model latents {ic.latent_size}px x {ic.unet.in_channels} do not match "
                             f"F's {fc.latent_size}px x {fc.unet.in_channels}")
        if fc.num_frames not in (lay.num_given, 2 * lay.num_given):
            raise ValueError(f"interpolation layout {lay} takes {lay.num_given} or {2 * lay.num_given} frames; "
                             f"F makes {fc.num_frames}")

    def _uncond_tokens(self, model: Any) -> dict:
        if self.negative_prompt is None:
            toks = stages.null_token_batch(model)
        else:
            toks = model.tokenize_all([self.negative_prompt])
        return jax.device_put({k: np.asarray(v) for k, v in toks.items()}, sharding.replicated(self.mesh))

    def _build(self) -> dict:
        """One jitted start + steps function per stage (closures over models, plans and schedules)."""
        m, plan, sched = self.main.model, self.plan, self.main.schedule
        phi = self.settings.guidance_rescale
        fns = {
            "keyframe_start": jax.jit(lambda p, tok, unc, seed, idx: stages.keyframe_start(
                m, p, tok, unc, item_keys(seed, idx), plan, sched)),
            "video_start": jax.jit(lambda p, tok, unc, seed, idx, kf: stages.video_start(
                m, p, tok, unc, item_keys(seed, idx), plan, sched, kf)),
            "encode_image": jax.jit(lambda p, x: m.encode_video(p, x[:, None])),
            "decode": jax.jit(lambda p, z: stages.decode(m, p, z)),
        }
        models = {"keyframe": (m, plan, sched, phi), "video": (m, plan, sched, phi)}
        if self.interp is not None:
            mi, ip, isch, lay = self.interp.model, self.interp_plan, self.interp.schedule, self.interp.layout
            lvl = int(self.interp_settings.interp_aug_level)
            fns["interp_start"] = jax.jit(lambda p, tok, unc, seed, idx, video: stages.interp_start(
                mi, p, tok, unc, item_keys(seed, idx), ip, isch, video, lay, lvl))
            models["interp"] = (mi, ip, isch, self.interp_settings.guidance_rescale)
        for name, (model, pl, sc, rphi) in models.items():
            mode, image_mode = stages.STAGE_MODES[name]
            fns[name + "_steps"] = jax.jit(
                lambda p, cb, st, k, scales, i0, i1, model=model, pl=pl, sc=sc, rphi=rphi, mode=mode, im=image_mode:
                self._pin(stages.denoise_steps(model, p, pl, sc, cb, st, k, scales, i0, i1, mode=mode,
                                               image_mode=im, rescale_phi=rphi)))
        for name in ("keyframe_start", "video_start", "interp_start"):
            if name in fns:
                fns[name] = jax.jit(lambda *a, f=fns[name]: (lambda cb, st, k: (cb, self._pin(st), k))(*f(*a)))
        return fns

    def _pin(self, state: samplers.SamplerState) -> samplers.SamplerState:
        """Batch-shard the sampler state so the steps function sees one input sharding (one compile)."""
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(
            a, sharding.batch_sharding(self.mesh, a.ndim)), state)

    # ---- running -------------------------------------------------------------------------------
    def _stage(self, name: str, label: str, params: Any, plan: samplers.SamplingPlan, schedule: Schedule,
               start_args: tuple) -> tuple[jax.Array, float]:
        """Run one stage in chunks of steps with progress; returns (latents, seconds without compile)."""
        t0 = time.perf_counter()
        cb, state, keys = self._fns[name + "_start"](params, *start_args)
        steps, scales = self._fns[name + "_steps"], self._scales[name]
        if name not in self.compile_s:  # a zero-step call compiles without running the loop
            jax.block_until_ready(steps(params, cb, state, keys, scales, 0, 0))
            self.compile_s[name] = time.perf_counter() - t0
            self.progress.note(f"{label}: compiled in {self.compile_s[name]:.1f}s")
            t0 = time.perf_counter()
        total = plan.num_steps
        chunk = self.chunk_steps or max(1, math.ceil(total / 10))
        t1, i = time.perf_counter(), 0
        while i < total:
            j = min(total, i + chunk)
            state = jax.block_until_ready(steps(params, cb, state, keys, scales, i, j))
            self.progress.report(label, j, total, time.perf_counter() - t1)
            i = j
        return stages.finish(plan, schedule, state), time.perf_counter() - t0

    def run(self, prompts: Sequence[str], *, seed: int = 0, indices: Sequence[int] | None = None,
            image: np.ndarray | None = None, interpolate: bool = True) -> Iterator[list[Sample]]:
        """Yield the Samples of each batch of `prompts` (padded to batch_size, padding dropped).

        `indices`: each prompt's index (default 0..n-1); with `seed` it fixes the item's noise.
        `image`: uint8 (R, R, 3) at the model's resolution (see `prepare_image`): image-to-video, or
        (N, R, R, 3): one first frame per prompt.
        `interpolate`: False skips a loaded interpolation model (F's video only, for a fifth of the cost).
        """
        prompts = validate_prompts(prompts)
        indices = list(range(len(prompts))) if indices is None else [int(i) for i in indices]
        if len(indices) != len(prompts):
            raise ValueError(f"{len(indices)} indices for {len(prompts)} prompts")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        r = self.main.model.config.resolution
        allowed = ((r, r, 3), (len(prompts), r, r, 3))
        if image is not None and (image.dtype != np.uint8 or image.shape not in allowed):
            raise ValueError(f"image must be uint8 ({r}, {r}, 3), or ({len(prompts)}, {r}, {r}, 3) for one per "
                             f"prompt (use prepare_image), got {image.dtype} {image.shape}")
        if image is not None and image.ndim == 3:
            image = np.broadcast_to(image, (len(prompts),) + image.shape)  # one per prompt from here on
        b = self.batch_size
        for s in range(0, len(prompts), b):
            part = None if image is None else image[s:s + b]
            yield self._run_batch(prompts[s:s + b], indices[s:s + b], int(seed), part, s // b, interpolate)

    def _put(self, x: Any) -> jax.Array:
        x = np.asarray(x)
        return jax.device_put(x, sharding.batch_sharding(self.mesh, x.ndim))

    def _run_batch(self, prompts: list[str], indices: list[int], seed: int, image: np.ndarray | None,
                   batch_no: int, interpolate: bool) -> list[Sample]:
        n, pad = len(prompts), self.batch_size - len(prompts)
        padded, idx = prompts + [prompts[-1]] * pad, indices + [indices[-1]] * pad
        timings, ran, f_cfg = {}, [], self.main.model.config
        with sharding.use_mesh(self.mesh):
            tokens = {k: self._put(v) for k, v in self.main.model.tokenize_all(padded).items()}
            common = (tokens, self._uncond["main"], jnp.int32(seed), self._put(np.asarray(idx, np.int32)))
            label = f"batch {batch_no}"
            if image is None:
                kf, timings["keyframe"] = self._stage("keyframe", f"{label} keyframe", self.params, self.plan,
                                                      self.main.schedule, common)
                ran.append("keyframe")
            else:
                t0 = time.perf_counter()
                x = clips.to_unit_range(np.concatenate([image, image[-1:].repeat(pad, 0)]))
                kf = self._fns["encode_image"](self.params, self._put(x))
                timings["encode_image"] = time.perf_counter() - t0
                ran.append("encode_image")
            latents = {"keyframe": np.asarray(kf)}
            check_finite(latents["keyframe"][:n], "keyframe", indices)
            if self.main.task == "t2v":
                video, timings["video"] = self._stage("video", f"{label} video", self.params, self.plan,
                                                      self.main.schedule, common + (kf,))
                latents["video"] = np.asarray(video)
                check_finite(latents["video"][:n], "video", indices)
                ran.append("video")
                if self.interp is not None and interpolate:
                    itok = {k: self._put(v) for k, v in self.interp.model.tokenize_all(padded).items()}
                    rows, timings["interp"] = self._stage(
                        "interp", f"{label} interpolation", self.interp_params, self.interp_plan,
                        self.interp.schedule, (itok, self._uncond["interp"]) + common[2:] + (video,))
                    halves = f_cfg.num_frames // self.interp.layout.num_given
                    latents["interp"] = np.asarray(stages.join_halves(rows, halves, self.interp.layout))
                    check_finite(latents["interp"][:n], "interp", indices)
                    ran.append("interp")
            t0 = time.perf_counter()
            z = jnp.concatenate([jnp.asarray(latents[k]) for k in latents], axis=1)
            pixels = np.asarray(self._fns["decode"](self.params, self._put(z)))
            timings["decode"] = time.perf_counter() - t0
        check_finite(pixels[:n], "decode", indices)
        ran.append("decode")
        frames = clips.from_unit_range(pixels)
        return [self._sample(i, frames, latents, prompts, indices, image, ran, timings) for i in range(n)]

    def _sample(self, i, frames, latents, prompts, indices, image, ran, timings) -> Sample:
        f_cfg, t = self.main.model.config, 1
        kf = frames[i, 0] if image is None else image[i]
        s = Sample(indices[i], prompts[i], kf, None, f_cfg.fps, stages=list(ran), timings=dict(timings),
                   notes=list(self.notes), latents={k: v[i] for k, v in latents.items()})
        if "video" in latents:
            s.video = frames[i, t:t + f_cfg.num_frames]
            t += f_cfg.num_frames
        if "interp" in latents:
            s.interpolated = frames[i, t:]
            s.interp_fps = f_cfg.fps * self.interp.layout.factor
        return s


def prepare_image(path_or_array: Any, resolution: int) -> tuple[np.ndarray, str]:
    """Load (PIL) / take an image, resize the short side and centre-crop to `resolution`; returns
    (uint8 (R, R, 3), a sentence saying what was done). Unreadable files raise ValueError naming the path."""
    if isinstance(path_or_array, np.ndarray):
        arr, name = path_or_array, "the image"
    else:
        from PIL import Image, UnidentifiedImageError

        name = str(path_or_array)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"image {name!r} does not exist")
        try:
            with Image.open(name) as img:
                arr = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot read image {name!r}: {e}") from None
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    out = clips.resize_center_crop(arr[None], resolution)[0]
    if (h, w) == (resolution, resolution):
        return out, f"{name} is {w}x{h}: used as is"
    return out, (f"{name} is {w}x{h}: resized (short side to {resolution}, bicubic) and centre-cropped to "
                 f"{resolution}x{resolution}")
