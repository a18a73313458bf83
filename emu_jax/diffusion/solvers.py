"""The samplers' update rules: one DDIM, DDPM, Euler or DPM-Solver++(2M) step as a pure function.

`emu_jax.diffusion.samplers` picks one per step and runs them in its `lax.scan` loop; its docstring
lists the diffusers scheduler each rule matches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emu_jax.diffusion.objectives import check_prediction, split_prediction
from emu_jax.diffusion.schedules import Schedule

__all__ = ["ddim_step", "ddpm_step", "dpmpp_2m_step", "euler_step", "ve_sigmas"]


def ddim_step(
    schedule: Schedule,
    model_out: jax.Array,
    x_t: jax.Array,
    t: jax.Array,
    t_prev: jax.Array,
    *,
    prediction: str,
    eta: float = 0.0,
    noise: jax.Array | None = None,
    set_alpha_to_one: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """One DDIM step from integer `t` to `t_prev` (< 0 means the end); returns `(x_prev, x0_pred)`.

    As DDIMScheduler.step: the end uses alphas_cumprod = 1 (`set_alpha_to_one`) or
    alphas_cumprod[0]; `eta > 0` adds `eta * sqrt(var) * noise`.
    """
    ac = jnp.asarray(schedule.alphas_cumprod)
    final = jnp.float32(1.0) if set_alpha_to_one else ac[0]
    a_t = ac[t]
    a_prev = jnp.where(t_prev >= 0, ac[jnp.maximum(t_prev, 0)], final)
    x0, eps = split_prediction(model_out, x_t, a_t**0.5, (1 - a_t) ** 0.5, prediction)
    if eta == 0:
        return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps, x0
    if noise is None:
        raise ValueError(f"ddim_step with eta={eta} needs noise shaped like x_t")
    variance = ((1 - a_prev) / (1 - a_t)) * (1 - a_t / a_prev)
    std = eta * variance**0.5
    # `1 - a_prev - std**2` rearranged so it cannot round below 0 (diffusers' form gives NaN for
    # eta = 1 at the zero-SNR first step with 25 or 50 steps, where the exact value is 0).
    dir_var = (1 - a_prev) * ((1 - eta**2) + eta**2 * a_t * (1 - a_prev) / (a_prev * (1 - a_t)))
    x_prev = a_prev**0.5 * x0 + dir_var**0.5 * eps
    return x_prev + std * noise, x0


def ddpm_step(
    schedule: Schedule,
    model_out: jax.Array,
    x_t: jax.Array,
    t: jax.Array,
    t_prev: jax.Array,
    *,
    prediction: str,
    noise: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """One ancestral DDPM step (posterior mean + fixed-small variance) from `t` to `t_prev`; `(x_prev, x0)`."""
    if noise is None:
        raise ValueError("ddpm_step needs noise shaped like x_t")
    ac = jnp.asarray(schedule.alphas_cumprod)
    a_t = ac[t]
    a_prev = jnp.where(t_prev >= 0, ac[jnp.maximum(t_prev, 0)], 1.0)
    beta_prod_t, beta_prod_prev = 1 - a_t, 1 - a_prev
    cur_alpha = a_t / a_prev
    cur_beta = 1 - cur_alpha
    x0, _ = split_prediction(model_out, x_t, a_t**0.5, beta_prod_t**0.5, prediction)
    mean = (a_prev**0.5 * cur_beta) / beta_prod_t * x0 + cur_alpha**0.5 * beta_prod_prev / beta_prod_t * x_t
    variance = jnp.maximum(beta_prod_prev / beta_prod_t * cur_beta, 1e-20)
    return mean + jnp.where(t > 0, variance**0.5, 0.0) * noise, x0


def ve_sigmas(schedule: Schedule, ts: jax.Array | np.ndarray) -> jax.Array:
    """VE sigmas `sqrt((1 - ac) / ac)` at integer timesteps `ts`, with one 0 appended: shape `(S+1,)`.

    A zero-SNR schedule's last alphas_cumprod is clamped to 2**-24 as diffusers does.
    """
    ac = jnp.asarray(schedule.alphas_cumprod)
    ac = ac.at[-1].set(jnp.where(ac[-1] == 0, 2.0**-24, ac[-1]))
    a = ac[jnp.asarray(ts)]
    return jnp.concatenate([((1 - a) / a) ** 0.5, jnp.zeros((1,), a.dtype)])


def euler_step(
    model_out: jax.Array, x: jax.Array, sigma: jax.Array, sigma_next: jax.Array, *, prediction: str
) -> tuple[jax.Array, jax.Array]:
    """One Euler step of the probability-flow ODE in VE space `x = x0 + sigma eps`; `(x_next, x0)`.

    `model_out` is the network's output for input `x / sqrt(sigma^2 + 1)`.
    """
    check_prediction(prediction)
    if prediction == "eps":
        x0 = x - sigma * model_out
    elif prediction == "v":
        x0 = model_out * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
    else:
        x0 = model_out
    derivative = (x - x0) / sigma
    return x + derivative * (sigma_next - sigma), x0


def _vp_alpha_sigma(sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
    alpha = 1 / (sigma**2 + 1) ** 0.5
    return alpha, sigma * alpha


def dpmpp_2m_step(
    model_out: jax.Array,
    x: jax.Array,
    sigma: jax.Array,
    sigma_next: jax.Array,
    sigma_prev: jax.Array,
    x0_prev: jax.Array,
    *,
    prediction: str,
    first_order: jax.Array | bool,
) -> tuple[jax.Array, jax.Array]:
    """One DPM-Solver++(2M) midpoint step in VP space, indexed by VE sigmas; `(x_next, x0)`.

    `x0_prev` / `sigma_prev` are the previous step's x0 prediction and sigma;
    `first_order` (first and last step) drops the second-order correction.
    """
    alpha_t, sigma_t = _vp_alpha_sigma(sigma_next)
    alpha_s0, sigma_s0 = _vp_alpha_sigma(sigma)
    alpha_s1, sigma_s1 = _vp_alpha_sigma(sigma_prev)
    x0, _ = split_prediction(model_out, x, alpha_s0, sigma_s0, prediction)
    lambda_t = jnp.log(alpha_t) - jnp.log(sigma_t)  # +inf at sigma_next = 0: exp(-h) = 0 below
    lambda_s0 = jnp.log(alpha_s0) - jnp.log(sigma_s0)
    lambda_s1 = jnp.log(alpha_s1) - jnp.log(sigma_s1)
    h, h_0 = lambda_t - lambda_s0, lambda_s0 - lambda_s1
    # The unselected branch may hold inf / nan (h = inf, h_0 = 0); `where` keeps it out.
    d1 = jnp.where(first_order, 0.0, (1.0 / (h_0 / h)) * (x0 - x0_prev))
    coef = alpha_t * (jnp.exp(-h) - 1.0)
    x_next = (sigma_t / sigma_s0) * x - coef * x0 - 0.5 * coef * d1
    return x_next, x0
