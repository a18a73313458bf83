"""Samplers (DDIM, DDPM, Euler, DPM-Solver++ 2M) as pure step functions and one `lax.scan` loop.

Every method is numerically equal to a diffusers scheduler with
`clip_sample=False`, `thresholding=False` (the latent-diffusion settings):
  ddim      DDIMScheduler(timestep_spacing=spacing, steps_offset, set_alpha_to_one); eta as in `step`
  ddpm      DDPMScheduler(variance_type="fixed_small", timestep_spacing=spacing, steps_offset)
  euler     EulerDiscreteScheduler(interpolation_type="linear", no karras / churn) for leading and
            trailing spacing; for linspace our timesteps are DDIM's integer ones, equal to
            EulerDiscreteScheduler.set_timesteps(timesteps=...) (diffusers would use fractional t)
  dpmpp_2m  DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++",
            solver_type="midpoint", lower_order_final=True, euler_at_final=False,
            final_sigmas_type="zero", use_karras_sigmas=False), with its own timestep
            layout (leading / linspace spread num_steps + 1 points and drop t = 0)
ZTSNR schedules behave like diffusers' `rescale_betas_zero_snr=True` (Euler / DPM clamp
alphas_cumprod[-1] to 2**-24 so that sigma stays finite). Measured (tests/diffusion/test_samplers.py,
12 steps, float32, diffusers' own float32 schedule): max |ours - diffusers| <= 2.5e-6 on every
intermediate sample, except Euler starting at t = N-1 under ZTSNR (sigma_max = 4096, where float32
cancellation in both codes gives up to 3e-5 on intermediate samples, 7e-6 on the result). One
deliberate difference: DDIM's `sqrt(1 - a_prev - std**2)` is rearranged so it cannot round below 0;
for eta = 1 at the zero-SNR first step diffusers gets sqrt(rounding noise) (2.4e-4 with 10 trailing
steps, NaN with 25 or 50) where the exact value, and ours, is 0.

The caller's `denoise_fn(x_t, t)` always sees the VP-space `x_t` (DDPM-style,
`x_t = alpha x0 + sigma eps`) and `t` as a `(B,)` int32 array; Euler's sigma
(VE) formulation, its `init_noise_sigma` and its input scaling stay internal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax.diffusion import guidance as guidance_lib
from emu_jax.diffusion.objectives import check_prediction
from emu_jax.diffusion.schedules import Schedule, inference_timesteps
from emu_jax.diffusion.solvers import ddim_step, ddpm_step, dpmpp_2m_step, euler_step, ve_sigmas

METHODS = ("ddim", "ddpm", "euler", "dpmpp_2m")
DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def timesteps(schedule: Schedule, num_steps: int, spacing: str, steps_offset: int = 0) -> np.ndarray:
    """Descending int32 timesteps `(num_steps,)`, identical to diffusers' DDIMScheduler.set_timesteps."""
    return inference_timesteps(schedule.num_train_steps, num_steps, spacing, steps_offset)


def _has_zero_terminal_snr(schedule: Schedule) -> bool:
    if schedule.zero_terminal_snr:
        return True
    ac = schedule.alphas_cumprod
    return isinstance(ac, np.ndarray) and float(ac[-1]) == 0.0


def validate_sampling_args(
    schedule: Schedule,
    *,
    method: str,
    num_steps: int,
    prediction: str,
    spacing: str,
    eta: float = 0.0,
    steps_offset: int = 0,
    guidance_mode: str | None = None,
    guidance_scales: Mapping[str, Any] | None = None,
    rescale_phi: float = 0.0,
) -> None:
    """Raise ValueError naming the bad value (and what is allowed) before anything compiles."""
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; allowed: {METHODS}")
    check_prediction(prediction)
    # Also validates spacing, num_steps and steps_offset.
    inference_timesteps(schedule.num_train_steps, num_steps, spacing, steps_offset, extra_point=method == "dpmpp_2m")
    if prediction == "eps" and _has_zero_terminal_snr(schedule):
        raise ValueError(
            "prediction='eps' is undefined at t=N when alphas_cumprod[-1]=0 (zero terminal SNR); "
            "use prediction='v' (or 'x0')"
        )
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    if eta != 0.0 and method != "ddim":
        raise ValueError(f"eta={eta} only applies to method='ddim', got method={method!r}")
    if guidance_mode is not None:
        guidance_lib.validate_guidance(guidance_mode, guidance_scales or {}, rescale_phi)


@dataclasses.dataclass(frozen=True)
class SamplingPlan:
    """Static description of one sampling run: method, prediction and the visited timesteps `(S,)`."""

    method: str
    prediction: str
    spacing: str
    timesteps: np.ndarray
    num_train_steps: int
    eta: float = 0.0
    set_alpha_to_one: bool = True

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.shape[0])

    @property
    def stochastic(self) -> bool:
        return self.method == "ddpm" or (self.method == "ddim" and self.eta > 0)


def make_plan(
    schedule: Schedule,
    *,
    method: str,
    num_steps: int,
    prediction: str,
    spacing: str,
    eta: float = 0.0,
    steps_offset: int = 0,
    set_alpha_to_one: bool = True,
) -> SamplingPlan:
    """Validate the arguments and fix the timesteps (DPM-Solver uses its own `num_steps + 1`-point layout)."""
    validate_sampling_args(
        schedule,
        method=method,
        num_steps=num_steps,
        prediction=prediction,
        spacing=spacing,
        eta=eta,
        steps_offset=steps_offset,
    )
    ts = inference_timesteps(
        schedule.num_train_steps, num_steps, spacing, steps_offset, extra_point=method == "dpmpp_2m"
    )
    return SamplingPlan(method, prediction, spacing, ts, schedule.num_train_steps, float(eta), set_alpha_to_one)


# ----------------------------------------------------------------------------- generic loop pieces


class SamplerState(NamedTuple):
    """Carry of the sampling scan: `x` in the method's space (VE-scaled for euler), `x0` the last x0 prediction."""

    x: jax.Array
    x0: jax.Array


def _sigmas(plan: SamplingPlan, schedule: Schedule) -> jax.Array:
    return ve_sigmas(schedule, plan.timesteps)


def init_state(plan: SamplingPlan, schedule: Schedule, x_T: jax.Array) -> SamplerState:
    """Start from unit-variance noise `x_T` (any shape `(B, ...)`); Euler scales it by `init_noise_sigma`."""
    x = jnp.asarray(x_T, jnp.float32)
    if plan.method == "euler":
        sigma_max = _sigmas(plan, schedule)[0]
        # diffusers' init_noise_sigma: sigma_max for linspace / trailing, sqrt(sigma_max^2+1) for leading.
        x = x * (sigma_max if plan.spacing != "leading" else (sigma_max**2 + 1) ** 0.5)
    return SamplerState(x, jnp.zeros_like(x))


def to_vp(plan: SamplingPlan, schedule: Schedule, x: jax.Array, i: jax.Array) -> jax.Array:
    """The VP-space sample for a sampler-space `x` at step index `i` (`i = S` is the end)."""
    if plan.method != "euler":
        return x
    sigma = _sigmas(plan, schedule)[i]
    return x / (sigma**2 + 1) ** 0.5


def model_input(
    plan: SamplingPlan, schedule: Schedule, state: SamplerState, i: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """`(x_t, t)` that the denoiser sees at step `i`: VP-space `x_t` and a `(B,)` int32 timestep."""
    t = jnp.asarray(plan.timesteps)[i]
    return to_vp(plan, schedule, state.x, i), jnp.full((state.x.shape[0],), t, jnp.int32)


def step(
    plan: SamplingPlan,
    schedule: Schedule,
    state: SamplerState,
    model_out: jax.Array,
    i: jax.Array,
    noise: jax.Array | None = None,
) -> SamplerState:
    """Advance from step `i` to `i + 1` given the denoiser output at step `i` (traced `i` is fine)."""
    ts = jnp.asarray(plan.timesteps)
    t, model_out, p = ts[i], model_out.astype(jnp.float32), plan.prediction
    if plan.method == "ddim":
        # diffusers' rule: the previous timestep is t - N // S, whatever the spacing.
        t_prev = t - plan.num_train_steps // plan.num_steps
        x, x0 = ddim_step(
            schedule,
            model_out,
            state.x,
            t,
            t_prev,
            prediction=p,
            eta=plan.eta,
            noise=noise,
            set_alpha_to_one=plan.set_alpha_to_one,
        )
    elif plan.method == "ddpm":
        t_prev = jnp.concatenate([ts, jnp.full((1,), -1, ts.dtype)])[i + 1]
        x, x0 = ddpm_step(schedule, model_out, state.x, t, t_prev, prediction=p, noise=noise)
    elif plan.method == "euler":
        sig = _sigmas(plan, schedule)
        x, x0 = euler_step(model_out, state.x, sig[i], sig[i + 1], prediction=p)
    else:
        sig = _sigmas(plan, schedule)
        first = (i == 0) | (i == plan.num_steps - 1)
        x, x0 = dpmpp_2m_step(
            model_out,
            state.x,
            sig[i],
            sig[i + 1],
            sig[jnp.maximum(i - 1, 0)],
            state.x0,
            prediction=p,
            first_order=first,
        )
    return SamplerState(x, x0)


def step_noise(rng: jax.Array, i: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normal noise a stochastic sampler adds at step `i`: `normal(fold_in(rng, i))`."""
    return jax.random.normal(jax.random.fold_in(rng, i), shape, jnp.float32)


def sample(
    denoise_fn: DenoiseFn,
    x_T: jax.Array,
    schedule: Schedule,
    *,
    method: str,
    num_steps: int,
    prediction: str,
    spacing: str,
    eta: float = 0.0,
    rng: jax.Array | None = None,
    noise: jax.Array | None = None,
    steps_offset: int = 0,
    set_alpha_to_one: bool = True,
    return_trajectory: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Run a whole sampler as one `lax.scan`; returns x0 `(B, ...)` float32 (and the trajectory).

    `x_T`: unit-variance Gaussian noise `(B, ...)`. `denoise_fn(x_t, t)` gets VP-space
    `x_t` and `t` `(B,)` int32 and returns the model output for `prediction`
    ("eps" / "v" / "x0"). Stochastic methods (ddpm, ddim with eta > 0) need `rng`
    (noise of step i drawn from `fold_in(rng, i)`) or `noise` `(num_steps, B, ...)`.
    Jit it with `denoise_fn` closed over and the keyword options static. With
    `return_trajectory`, also returns the VP-space sample after every step `(S, B, ...)`.
    """
    plan = make_plan(
        schedule,
        method=method,
        num_steps=num_steps,
        prediction=prediction,
        spacing=spacing,
        eta=eta,
        steps_offset=steps_offset,
        set_alpha_to_one=set_alpha_to_one,
    )
    expected = (plan.num_steps,) + tuple(x_T.shape)
    if noise is not None and tuple(noise.shape) != expected:
        raise ValueError(f"noise must have shape {expected} (num_steps, *x_T.shape), got {tuple(noise.shape)}")
    if plan.stochastic and rng is None and noise is None:
        raise ValueError(f"method={method!r} with eta={eta} is stochastic: pass rng= (or noise=)")

    def body(state: SamplerState, xs: tuple[jax.Array, jax.Array | None]):
        i, noise_i = xs
        if plan.stochastic and noise_i is None:
            noise_i = step_noise(rng, i, state.x.shape)
        x_in, t = model_input(plan, schedule, state, i)
        state = step(plan, schedule, state, denoise_fn(x_in, t), i, noise_i)
        return state, (to_vp(plan, schedule, state.x, i + 1) if return_trajectory else None)

    xs = (jnp.arange(plan.num_steps), None if noise is None else jnp.asarray(noise, jnp.float32))
    final, traj = jax.lax.scan(body, init_state(plan, schedule, x_T), xs)
    x0 = to_vp(plan, schedule, final.x, plan.num_steps)
    return (x0, traj) if return_trajectory else x0
