"""The sampling Pipeline: text -> keyframe -> video -> interpolated video -> pixels (SPEC "Inference path").

    pipe = Pipeline.from_checkpoint("workdir/t2v", batch_size=4, overrides={"num_steps": 50})
    for batch in pipe.run(["a red ball bouncing"], seed=0):
        for s in batch:
            s.keyframe, s.video, s.interpolated  # uint8 (H, W, 3), (T, H, W, 3), (S, H, W, 3) or None

The stages are the pure functions of `emu_jax.sampling.stages`. The
`Pipeline` owns the models, params, schedules and one set of jitted functions
per stage, compiled once for the (padded) batch shape and reused for every
batch; it runs each stage's denoising loop in chunks of steps and reports
stage / step / ETA to stderr between chunks (no host callback inside the loop,
so executables stay cacheable). The batch is sharded over the mesh's data
axes and, with a `mesh_shape`, the parameters over its fsdp / tensor axes; in
a multi-process job every process feeds its own rows of each global batch
(`run_batch`, the same number of calls in every process) and gets them back.
Every stage's output is checked on the host: NaN / Inf raises
`NonFiniteError` naming the stage, so no black video reaches the disk.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Iterator, Mapping, Sequence

import jax
import numpy as np

from emu_jax import compile_cache, sharding
from emu_jax.data import clips
from emu_jax.diffusion import samplers
from emu_jax.diffusion.schedules import Schedule
from emu_jax.sampling import programs, stages
from emu_jax.sampling.loading import VIDEO_TASKS, LoadedModel, find_interp_checkpoint, load_model
from emu_jax.sampling.progress import Progress
from emu_jax.sampling.results import Sample, check_finite, make_sample
from emu_jax.sampling.settings import Settings, check_batch_size, check_seed, validate_prompts


class Pipeline:
    """Models + params + schedules + jitted stage functions; `run(prompts)` yields finished batches.

    `main` is model F (task 't2v'; 't2i' gives keyframes only); `interp` the
    optional model I. Everything is validated here, before any compile; the
    first batch compiles each stage once (reported with its time), later
    batches of the same `batch_size` reuse the executables. `batch_size` is
    this process's rows per batch (rounded up to its share of the data-parallel
    devices, `local_batch`); `mesh_shape` (e.g. {"data": -1, "fsdp": 2}) shards
    the parameters by their logical axes.
    """

    def __init__(
        self,
        main: LoadedModel,
        settings: Settings,
        *,
        interp: LoadedModel | None = None,
        interp_settings: Settings | None = None,
        batch_size: int = 1,
        negative_prompt: str | None = None,
        devices: Sequence[Any] | None = None,
        progress: Progress | bool = True,
        chunk_steps: int | None = None,
        compilation_cache: bool = True,
        mesh_shape: Mapping[str, int] | None = None,
        interp_skipped: str | None = None,
    ):
        if main.task not in VIDEO_TASKS:
            hint = "; pass it as the interpolation model (--interp-checkpoint)" if main.task == "interp" else ""
            raise ValueError(
                f"{main.path} is a {main.task!r} checkpoint; the main model must be one of {VIDEO_TASKS}{hint}"
            )
        settings.validate(main.schedule, main.prediction)
        check_batch_size(batch_size)
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
            video = f"the video is F's {main.model.config.num_frames} frames at {main.model.config.fps} fps"
            self.notes.append(
                f"{interp_skipped}: {video}"
                if interp_skipped
                else f"no interpolation model: {video}; interpolation skipped"
            )
        self.interp = interp
        self.interp_settings = interp_settings or settings
        if interp is not None:
            self._check_interp(interp)
        if compilation_cache:
            compile_cache.enable()
        self.mesh = sharding.sampling_mesh(batch_size, mesh_shape, devices)
        m = sharding.local_batch_multiple(self.mesh)
        self.local_batch = -(-batch_size // m) * m  # padding rows keep every device busy with whole rows
        self.plan = settings.plan(main.schedule, main.prediction)
        self.params = self._place_params(main, settings, mesh_shape)
        self._uncond = {"main": self._uncond_tokens(main.model)}
        f32 = np.float32  # host scalars: valid jit arguments in every process of a multi-host mesh
        self._scales = {
            "keyframe": {"text": f32(settings.guidance_keyframe)},
            "video": {"image": f32(settings.guidance_image), "text": f32(settings.guidance_text)},
        }
        if interp is not None:
            self.interp_plan = self.interp_settings.plan(interp.schedule, interp.prediction)
            self.interp_params = self._place_params(interp, self.interp_settings, mesh_shape)
            self._uncond["interp"] = self._uncond_tokens(interp.model)
            s = self.interp_settings
            self._scales["interp"] = {"image": f32(s.guidance_image), "text": f32(s.guidance_text)}
        self._fns = self._build()
        self.compile_s: dict[str, float] = {}  # first-use compile (and start) seconds per stage

    @classmethod
    def from_checkpoint(
        cls,
        path: str,
        *,
        interp_checkpoint: str | None = None,
        use_interp: bool = True,
        overrides: Mapping[str, Any] | None = None,
        interp_overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> "Pipeline":
        """Load F from `path` (and I from `interp_checkpoint` or `path/interp/`); settings = meta + overrides
        (+ `interp_overrides` for I alone, e.g. its own step count)."""
        main = load_model(path)
        settings = Settings.from_dict(main.meta.get("sampling"), **dict(overrides or {}))
        interp, interp_settings = None, None
        ipath = find_interp_checkpoint(path, interp_checkpoint) if use_interp else None
        if ipath is not None:
            interp = load_model(ipath)
            interp_settings = Settings.from_dict(
                interp.meta.get("sampling"), **{**dict(overrides or {}), **dict(interp_overrides or {})}
            )
        return cls(main, settings, interp=interp, interp_settings=interp_settings, **kwargs)

    # ---- set-up ------------------------------------------------------------------------------
    def _check_interp(self, interp: LoadedModel) -> None:
        if interp.task != "interp":
            raise ValueError(f"{interp.path} is a {interp.task!r} checkpoint, not an interpolation model")
        self.interp_settings.validate(interp.schedule, interp.prediction)
        fc, ic, lay = self.main.model.config, interp.model.config, interp.layout
        if (fc.latent_size, fc.unet.in_channels) != (ic.latent_size, ic.unet.in_channels):
            raise ValueError(
                f"interpolation model latents {ic.latent_size}px x {ic.unet.in_channels} do not match "
                f"F's {fc.latent_size}px x {fc.unet.in_channels}"
            )
        if fc.num_frames not in (lay.num_given, 2 * lay.num_given):
            raise ValueError(
                f"interpolation layout {lay} takes {lay.num_given} or {2 * lay.num_given} frames; "
                f"F makes {fc.num_frames}"
            )

    def _place_params(self, loaded: LoadedModel, settings: Settings, mesh_shape: Mapping[str, int] | None) -> Any:
        """Params in the settings' dtype, replicated or (with a mesh shape) sharded by their logical axis names."""
        rep = sharding.replicated(self.mesh)
        loaded = dataclasses.replace(loaded, params=settings.cast_params(loaded.params))
        if (
            mesh_shape is None
            or sharding.data_parallel_size(self.mesh) == self.mesh.size
            and self.mesh.shape["fsdp"] == 1
        ):
            return jax.tree.map(lambda x: sharding.put_global(x, rep), loaded.params)
        shardings = sharding.params_shardings(loaded.model.abstract_params(), self.mesh)
        try:
            return jax.tree.map(sharding.put_global, loaded.params, shardings)
        except ValueError as e:  # a converted model whose tree differs from the config's: replicate instead
            self.notes.append(
                f"{loaded.path}: parameters replicated (their tree does not match the model's "
                f"logical axes: {str(e).splitlines()[0]})"
            )
            return jax.tree.map(lambda x: sharding.put_global(x, rep), loaded.params)

    def _uncond_tokens(self, model: Any) -> dict:
        if self.negative_prompt is None:
            toks = stages.null_token_batch(model)
        else:
            toks = model.tokenize_all([self.negative_prompt])
        rep = sharding.replicated(self.mesh)
        return {k: sharding.put_global(v, rep) for k, v in toks.items()}

    def _build(self) -> dict:
        """The jitted programs of every stage (`emu_jax.sampling.programs`, shared with `emu-video aot`)."""
        s = self.settings
        main = programs.StageModel(
            self.main.model,
            self.plan,
            self.main.schedule,
            s.guidance_rescale,
            guidance_passes=s.guidance_passes,
            unguided=s.unguided(),
        )
        interp = None
        if self.interp is not None:
            s = self.interp_settings
            interp = programs.StageModel(
                self.interp.model,
                self.interp_plan,
                self.interp.schedule,
                s.guidance_rescale,
                self.interp.layout,
                int(s.interp_aug_level),
                s.guidance_passes,
                s.unguided(),
            )
        return programs.build(self.mesh, main, interp)

    # ---- running -------------------------------------------------------------------------------
    def _stage(
        self, name: str, label: str, params: Any, plan: samplers.SamplingPlan, schedule: Schedule, start_args: tuple
    ) -> tuple[jax.Array, float]:
        """Run one stage in chunks of steps with progress; returns (latents, seconds without compile)."""
        t0 = time.perf_counter()
        cb, state, keys = self._fns[name + "_start"](params, *start_args)
        self._start_x[name] = sharding.local_rows(state.x)  # kept so a run can prove its noise per item
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
        return self._fns[name + "_finish"](state), time.perf_counter() - t0

    def run(
        self,
        prompts: Sequence[str],
        *,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        image: np.ndarray | None = None,
        interpolate: bool = True,
        video: np.ndarray | None = None,
    ) -> Iterator[list[Sample]]:
        """Yield the Samples of each batch of `prompts` (padded to `local_batch`, padding dropped).

        `indices`: each prompt's index (default 0..n-1); with `seed` it fixes the item's noise.
        `image`: uint8 (R, R, 3) at the model's resolution (see `prepare_image`): image-to-video, or
        (N, R, R, 3): one first frame per prompt.
        `interpolate`: False skips a loaded interpolation model (F's video only, for a fifth of the cost).
        `video`: uint8 (N, T, R, R, 3), F's length and rate: I interpolates these frames (no F stages run).
        """
        prompts = validate_prompts(prompts)
        indices = list(range(len(prompts))) if indices is None else [int(i) for i in indices]
        if len(indices) != len(prompts):
            raise ValueError(f"{len(indices)} indices for {len(prompts)} prompts")
        seed = check_seed(seed)
        image = self.check_image(image, len(prompts))
        video = self.check_video(video, len(prompts), image)
        if image is not None and self.settings.video_from == "text":
            raise ValueError("an image was given, but sampling setting video_from is 'text' (no image conditioning)")
        b = self.batch_size
        for s in range(0, len(prompts), b):
            part, given = (None if x is None else x[s : s + b] for x in (image, video))
            yield self.run_batch(prompts[s : s + b], indices[s : s + b], seed, part, s // b, interpolate, given)

    def check_image(self, image: np.ndarray | None, n: int) -> np.ndarray | None:
        """None, or (n, R, R, 3) uint8 first frames (one image is given to every prompt)."""
        if image is None:
            return None
        r = self.main.model.config.resolution
        allowed = ((r, r, 3), (n, r, r, 3))
        if image.dtype != np.uint8 or image.shape not in allowed:
            raise ValueError(
                f"image must be uint8 ({r}, {r}, 3), or ({n}, {r}, {r}, 3) for one per "
                f"prompt (use prepare_image), got {image.dtype} {image.shape}"
            )
        return np.broadcast_to(image, (n, r, r, 3)) if image.ndim == 3 else image

    def check_video(self, video: np.ndarray | None, n: int, image: np.ndarray | None) -> np.ndarray | None:
        """None, or (n, T, R, R, 3) uint8 frames for I alone (F's frame count T and resolution R)."""
        cfg = self.main.model.config
        want = (n, cfg.num_frames, cfg.resolution, cfg.resolution, 3)
        if video is not None and (self.interp is None or image is not None):
            raise ValueError("a video to interpolate needs an interpolation model loaded and no image")
        if video is not None and (video.dtype != np.uint8 or video.shape != want):
            raise ValueError(f"video must be uint8 {want} (one per prompt), got {video.dtype} {video.shape}")
        return video

    def _put(self, x: Any) -> jax.Array:
        return sharding.shard_batch(np.asarray(x), self.mesh)

    def run_batch(
        self,
        prompts: list[str],
        indices: list[int],
        seed: int | Sequence[int],
        image: np.ndarray | None = None,
        batch_no: int = 0,
        interpolate: bool = True,
        video: np.ndarray | None = None,
    ) -> list[Sample]:
        """One batch of at most `local_batch` of this process's items (possibly none: a multi-process job's
        last batch); padded with copies of an item whose outputs are dropped. `seed`: one, or one per
        item. Every process must call it the same number of times, with or without `image` alike."""
        n, pad = len(prompts), self.local_batch - len(prompts)
        if pad < 0:
            raise ValueError(f"{n} prompts for a batch of {self.local_batch}")
        padded = prompts + [prompts[-1] if n else "padding"] * pad
        idx = indices + [indices[-1] if n else 0] * pad
        seeds = [int(seed)] * n if np.ndim(seed) == 0 else [int(x) for x in seed]
        if len(seeds) != n:
            raise ValueError(f"{len(seeds)} seeds for {n} prompts")
        seeds += [seeds[-1] if n else 0] * pad
        timings, ran = {}, []
        self._start_x: dict[str, np.ndarray] = {}
        with sharding.use_mesh(self.mesh):
            tokens = {k: self._put(v) for k, v in self.main.model.tokenize_all(padded).items()}
            common = (
                tokens,
                self._uncond["main"],
                self._put(np.asarray(seeds, np.int32)),
                self._put(np.asarray(idx, np.int32)),
            )
            label = f"batch {batch_no}"
            direct = (self.settings.video_from == "text" and self.main.task == "t2v") or video is not None
            if video is not None:  # I alone, on the caller's frames (`run(video=)`)
                t0 = time.perf_counter()
                given = self._fns["encode_video"](self.params, self._put(_padded(video, n, pad)))
                timings["encode_video"] = time.perf_counter() - t0
                ran.append("encode_video")
            if direct:  # direct text-to-video: no keyframe stage, F's video from the text alone
                kf = None
            elif image is None:
                kf, timings["keyframe"] = self._stage(
                    "keyframe", f"{label} keyframe", self.params, self.plan, self.main.schedule, common
                )
                ran.append("keyframe")
            else:
                t0 = time.perf_counter()
                kf = self._fns["encode_image"](self.params, self._put(_padded(image, n, pad)))
                timings["encode_image"] = time.perf_counter() - t0
                ran.append("encode_image")
            pieces = {} if direct else {"keyframe": kf}
            if video is not None:
                pieces["video"] = given
            elif self.main.task == "t2v":
                given, timings["video"] = self._stage(
                    "video", f"{label} video", self.params, self.plan, self.main.schedule, common + (kf,)
                )
                pieces["video"] = given
                ran.append("video")
            if "video" in pieces and self.interp is not None and interpolate:
                itok = {k: self._put(v) for k, v in self.interp.model.tokenize_all(padded).items()}
                pieces["interp"], timings["interp"] = self._stage(
                    "interp",
                    f"{label} interpolation",
                    self.interp_params,
                    self.interp_plan,
                    self.interp.schedule,
                    (itok, self._uncond["interp"]) + common[2:] + (given,),
                )
                ran.append("interp")
            latents = {k: sharding.local_rows(v) for k, v in pieces.items()}
            for k, v in latents.items():
                check_finite(v[:n], k, indices)
            t0 = time.perf_counter()
            pixels = sharding.local_rows(self._fns["decode"](self.params, *pieces.values()))
            timings["decode"] = time.perf_counter() - t0
        check_finite(pixels[:n], "decode", indices)
        ran.append("decode")
        frames = clips.from_unit_range(pixels)
        factor = self.interp.layout.factor if self.interp is not None else None
        meta = dict(cfg=self.main.model.config, interp_factor=factor, notes=self.notes, start_x=self._start_x)
        return [
            make_sample(i, frames, latents, prompts, indices, image, ran, timings, batch=self.local_batch, **meta)
            for i in range(n)
        ]


def _padded(frames_u8: np.ndarray, n: int, pad: int) -> np.ndarray:
    """A batch's first `n` uint8 items + `pad` copies of the last (zeros for an empty batch), in [-1, 1]."""
    last = frames_u8[-1:] if n else np.zeros((1,) + frames_u8.shape[1:], np.uint8)
    return clips.to_unit_range(np.concatenate([frames_u8[:n], last.repeat(pad, 0)]))
