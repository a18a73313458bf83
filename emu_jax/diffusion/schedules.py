"""Noise schedules: betas, cumulative alphas, SNR, zero-terminal-SNR rescale, timestep spacing.

A `Schedule` is a small pytree of float32 arrays, built once in float64 numpy
(as the original LDM / Stable Diffusion code does) and cast, so that it can be
closed over by a jitted sampler or passed through `jax.jit` as an argument.
`inference_timesteps` picks the descending timesteps a sampler visits, with the
same rules as diffusers' `set_timesteps`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
# diffusers' names for the same schedules, accepted so configs can be copied over.
_ALIASES = {"squaredcos_cap_v2": "cosine", "quad": "scaled_linear"}
SPACINGS = ("leading", "trailing", "linspace")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete VP noise schedule over `N` training timesteps `t = 0..N-1`.

    `x_t = sqrt(alphas_cumprod[t]) * x0 + sqrt(1 - alphas_cumprod[t]) * eps`.
    Arrays are float32 of shape `(N,)`; derived quantities are properties so a
    traced schedule (passed through jit) works as well as a constant one.
    """

    betas: jax.Array | np.ndarray
    alphas_cumprod: jax.Array | np.ndarray
    beta_schedule: str = dataclasses.field(default="custom", metadata=dict(static=True))
    zero_terminal_snr: bool = dataclasses.field(default=False, metadata=dict(static=True))

    @property
    def num_train_steps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def alphas(self) -> jax.Array:
        return 1.0 - jnp.asarray(self.betas)

    @property
    def sqrt_alphas_cumprod(self) -> jax.Array:
        """`alpha_t` in the VP notation: the signal scale, shape `(N,)`."""
        return jnp.sqrt(jnp.asarray(self.alphas_cumprod))

    @property
    def sqrt_one_minus_alphas_cumprod(self) -> jax.Array:
        """`sigma_t` in the VP notation: the noise scale, shape `(N,)`."""
        return jnp.sqrt(1.0 - jnp.asarray(self.alphas_cumprod))

    @property
    def snr(self) -> jax.Array:
        """Signal-to-noise ratio `alphas_cumprod / (1 - alphas_cumprod)`, shape `(N,)`; 0 at t=N-1 under ZTSNR."""
        ac = jnp.asarray(self.alphas_cumprod)
        return ac / (1.0 - ac)

    def coefficients(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`(sqrt(alphas_cumprod[t]), sqrt(1 - alphas_cumprod[t]))` for integer timesteps `t` of any shape."""
        ac_t = jnp.asarray(self.alphas_cumprod)[t]
        return jnp.sqrt(ac_t), jnp.sqrt(1.0 - ac_t)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas so that the last timestep has SNR exactly 0 (Lin et al. 2023, Algorithm 1).

    Shifts and scales `sqrt(alphas_cumprod)` so its last value is 0 and its first
    value is unchanged; equal to diffusers' `rescale_zero_terminal_snr`, but in float64.
    """
    betas = np.asarray(betas, np.float64)
    sqrt_ac = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ac[0], sqrt_ac[-1]
    sqrt_ac = (sqrt_ac - last) * (first / (first - last))
    ac = sqrt_ac**2
    alphas = np.concatenate([ac[:1], ac[1:] / ac[:-1]])
    return 1.0 - alphas


def _cosine_betas(num_train_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule as diffusers' `squaredcos_cap_v2` (s = 0.008, betas capped)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    n = num_train_steps
    return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)])


def make_schedule(
    beta_schedule: str,
    num_train_steps: int = 1000,
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    zero_terminal_snr: bool = False,
) -> Schedule:
    """Build a schedule; the defaults are Stable Diffusion's and Emu's ("quad" = `scaled_linear`).

    `linear`: betas evenly spaced in [beta_start, beta_end]; `scaled_linear`: sqrt(betas)
    evenly spaced (SD / the paper's "quad"); `cosine`: diffusers' `squaredcos_cap_v2`
    (ignores beta_start / beta_end). `zero_terminal_snr=True` applies
    `rescale_zero_terminal_snr`, so `alphas_cumprod[-1] == 0` exactly (SPEC's 512 px stage).
    Equal to diffusers' schedulers' `alphas_cumprod` up to their float32 rounding
    (relative 1e-6, 4e-5 in the tiny tail of a rescaled schedule).
    """
    name = _ALIASES.get(beta_schedule, beta_schedule)
    if name not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta_schedule {beta_schedule!r}; allowed: {BETA_SCHEDULES}")
    if not isinstance(num_train_steps, (int, np.integer)) or num_train_steps < 2:
        raise ValueError(f"num_train_steps must be an integer >= 2, got {num_train_steps!r}")
    if name != "cosine" and not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}")
    n = int(num_train_steps)
    if name == "linear":
        betas = np.linspace(beta_start, beta_end, n, dtype=np.float64)
    elif name == "scaled_linear":
        betas = np.linspace(beta_start**0.5, beta_end**0.5, n, dtype=np.float64) ** 2
    else:
        betas = _cosine_betas(n)
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    alphas_cumprod = np.cumprod(1.0 - betas)
    if zero_terminal_snr:
        alphas_cumprod[-1] = 0.0  # already 0 up to rounding; make "exactly" a guarantee
    return Schedule(
        betas=betas.astype(np.float32),
        alphas_cumprod=alphas_cumprod.astype(np.float32),
        beta_schedule=name,
        zero_terminal_snr=bool(zero_terminal_snr),
    )


def inference_timesteps(
    num_train_steps: int,
    num_steps: int,
    spacing: str,
    steps_offset: int = 0,
    *,
    extra_point: bool = False,
) -> np.ndarray:
    """Descending int32 timesteps of shape `(num_steps,)` a sampler visits.

    Same as diffusers' `DDIMScheduler.set_timesteps` (`timestep_spacing` and
    `steps_offset`, which only `leading` uses; diffusers' default config is 0, SD's is 1):
      leading:  `arange(num_steps) * (N // num_steps) + steps_offset`, reversed;
      trailing: `round(arange(N, 0, -N / num_steps)) - 1` (starts at t = N-1, needed for ZTSNR);
      linspace: `round(linspace(0, N-1, num_steps))`, reversed.
    `extra_point=True` follows `DPMSolverMultistepScheduler` instead: leading and
    linspace lay out `num_steps + 1` points and drop the last (t = 0).
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; allowed: {SPACINGS}")
    if not isinstance(num_steps, (int, np.integer)) or not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be an integer in [1, {num_train_steps}], got {num_steps!r}")
    n, big_n, extra = int(num_steps), int(num_train_steps), int(extra_point)
    if spacing == "leading":
        ratio = big_n // (n + extra)
        ts = (np.arange(0, n + extra) * ratio).round()[::-1][:n].astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ts = np.round(np.arange(big_n, 0, -big_n / n)).astype(np.int64) - 1
    else:
        ts = np.linspace(0, big_n - 1, n + extra).round()[::-1][:n].astype(np.int64)
    if ts.shape != (n,) or np.any(np.diff(ts) >= 0) or ts.min() < 0 or ts.max() >= big_n:
        raise ValueError(
            f"num_steps={n} with spacing={spacing!r}, steps_offset={steps_offset} gives timesteps "
            f"outside [0, {big_n}) or not strictly decreasing; use fewer steps or another spacing"
        )
    return ts.astype(np.int32)
