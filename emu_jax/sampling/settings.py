"""Sampling settings and the one place that checks sampling arguments.

`Settings` holds the recipe's defaults (SPEC); `configs/base.py`'s `sampling`
section is built from it, and a checkpoint's `sampling` section overrides it.
The `check_*` functions are what the command line, the server and the
`Pipeline` all call, each passing the names its user typed (`--steps`,
`steps`) so an error names the value as it was given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from emu_jax.diffusion import guidance as guidance_lib
from emu_jax.diffusion import samplers
from emu_jax.diffusion.schedules import Schedule

MAX_SEED = 2**31
GUIDANCE_FIELDS = ("guidance_keyframe", "guidance_image", "guidance_text")
PARAM_DTYPES = ("stored", "float32", "bfloat16")
GUIDANCE_PASSES = ("batched", "sequential")
VIDEO_FROM = ("keyframe", "text")


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
    # Weights as the checkpoint stores them, or cast once at load: bfloat16 halves their resident
    # memory (the paper's F and I: 40.6 -> 20.3 GiB, docs/aot.md).
    param_dtype: str = "stored"
    # The guidance conditionings (2 or 3) as one batched forward, or one after another: sequential
    # needs a third of the activation memory (the paper's interp on v5e: docs/aot.md) for smaller matmuls.
    guidance_passes: str = "batched"
    # F's video from the keyframe (factorised, the paper) or from the text alone (direct text-to-video: no
    # keyframe stage, the image conditioning left empty; for a video model trained with the image dropped).
    video_from: str = "keyframe"

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
            schedule,
            method=self.method,
            num_steps=self.num_steps,
            prediction=prediction,
            spacing=self.spacing,
            eta=self.eta,
            guidance_mode="two_condition",
            guidance_scales={"image": self.guidance_image, "text": self.guidance_text},
            rescale_phi=self.guidance_rescale,
        )
        guidance_lib.validate_guidance_scale("keyframe", self.guidance_keyframe)
        lvl = self.interp_aug_level
        if isinstance(lvl, bool) or not isinstance(lvl, (int, np.integer)) or not 0 <= lvl <= schedule.num_train_steps:
            raise ValueError(f"interp_aug_level must be an integer in [0, {schedule.num_train_steps}], got {lvl!r}")
        check_param_dtype(self.param_dtype)
        check_guidance_passes(self.guidance_passes)
        check_choice(self.video_from, VIDEO_FROM, "video_from")

    def cast_params(self, params: Any) -> Any:
        """Floating leaves in `param_dtype` (arrays or ShapeDtypeStructs); unchanged when 'stored'."""
        if self.param_dtype == "stored":
            return params
        from emu_jax import model_folder

        return model_folder.cast_floats(params, self.param_dtype)

    def unguided(self) -> tuple[str, ...]:
        """The stages whose guidance scales are all 1: their guided output is the fully conditioned model's
        exactly, so they run that one forward instead of 2 or 3 (`stages.denoise_steps`)."""
        out = ("keyframe",) if self.guidance_keyframe == 1 else ()
        return out + (("video", "interp") if self.guidance_image == 1 and self.guidance_text == 1 else ())

    def plan(self, schedule: Schedule, prediction: str) -> samplers.SamplingPlan:
        return samplers.make_plan(
            schedule,
            method=self.method,
            num_steps=self.num_steps,
            prediction=prediction,
            spacing=self.spacing,
            eta=self.eta,
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_overrides(overrides: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> None:
    """Cheap checks of user overrides (None = not given) before any checkpoint is read.

    `labels` maps a setting to the name the user typed; range checks that need the schedule
    (steps <= num_train_steps) happen in `Settings.validate`.
    """
    labels = dict(labels or {})
    for key, value in overrides.items():
        if value is None:
            continue
        label = labels.get(key, key)
        if key == "method" and value not in samplers.METHODS:
            raise ValueError(f"unknown {label} {value!r}; allowed: {', '.join(samplers.METHODS)}")
        if key == "num_steps" and not _is_int(value):
            raise ValueError(f"{label} must be an integer, got {value!r}")
        if key == "num_steps" and value < 1:
            raise ValueError(f"{label} must be >= 1, got {value!r}")
        if key in GUIDANCE_FIELDS:
            guidance_lib.validate_guidance_scale(label, value)
        if key == "param_dtype":
            check_param_dtype(value, label)
        if key == "guidance_passes":
            check_guidance_passes(value, label)
        if key == "video_from":
            check_choice(value, VIDEO_FROM, label)


def check_choice(value: Any, allowed: Sequence[str], label: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {label} {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_param_dtype(value: Any, label: str = "param_dtype") -> str:
    return check_choice(value, PARAM_DTYPES, label)


def check_guidance_passes(value: Any, label: str = "guidance_passes") -> str:
    return check_choice(value, GUIDANCE_PASSES, label)


def check_seed(seed: Any, label: str = "seed") -> int:
    if not _is_int(seed) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"{label} must be an integer in [0, 2**31), got {seed!r}")
    return int(seed)


def check_batch_size(batch_size: Any, label: str = "batch_size") -> int:
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"{label} must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


def validate_prompts(prompts: Sequence[str]) -> list[str]:
    """Non-empty list of non-empty strings, else ValueError naming the bad one."""
    if isinstance(prompts, str) or not len(prompts):
        raise ValueError("give at least one prompt (a list of strings)")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} is empty ({p!r}); every prompt needs some text")
    return list(prompts)
