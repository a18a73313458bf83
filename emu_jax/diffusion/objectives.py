"""Diffusion parameterisations and the training loss: eps / v / x0 conversions, targets, loss weights.

With `alpha = sqrt(alphas_cumprod[t])` and `sigma = sqrt(1 - alphas_cumprod[t])`:
`x_t = alpha * x0 + sigma * eps` and `v = alpha * eps - sigma * x0` (Salimans & Ho 2022).
The coefficient-level functions take `alpha` / `sigma` broadcastable to `x_t`, so
samplers that use other coefficient formulas (DPM-Solver's) reuse them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emu_jax.diffusion.schedules import Schedule

PREDICTIONS = ("eps", "v", "x0")
# diffusers' `prediction_type` names for ours.
DIFFUSERS_PREDICTION = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
WEIGHTINGS = ("uniform", "min_snr", "eps_mse")


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; allowed: {PREDICTIONS}")


def _bcast(coef: jax.Array, x: jax.Array) -> jax.Array:
    """Reshape a scalar or `(B,)` coefficient so that it broadcasts against `x` of shape `(B, ...)`."""
    coef = jnp.asarray(coef)
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim)) if coef.ndim else coef


def eps_to_x0(x_t: jax.Array, eps: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    return (x_t - sigma * eps) / alpha


def v_to_x0(x_t: jax.Array, v: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    return alpha * x_t - sigma * v


def v_to_eps(x_t: jax.Array, v: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    return alpha * v + sigma * x_t


def x0_to_eps(x_t: jax.Array, x0: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    return (x_t - alpha * x0) / sigma


def split_prediction(
    model_out: jax.Array, x_t: jax.Array, alpha: jax.Array, sigma: jax.Array, prediction: str
) -> tuple[jax.Array, jax.Array]:
    """`(x0, eps)` implied by a model output; `alpha` / `sigma` already broadcastable to `x_t`.

    eps-prediction divides by `alpha` (undefined at zero SNR); x0-prediction divides by `sigma`.
    """
    check_prediction(prediction)
    if prediction == "eps":
        return eps_to_x0(x_t, model_out, alpha, sigma), model_out
    if prediction == "v":
        return v_to_x0(x_t, model_out, alpha, sigma), v_to_eps(x_t, model_out, alpha, sigma)
    return model_out, x0_to_eps(x_t, model_out, alpha, sigma)


def predict_x0_eps(
    schedule: Schedule, model_out: jax.Array, x_t: jax.Array, t: jax.Array, prediction: str
) -> tuple[jax.Array, jax.Array]:
    """`(x0, eps)` from a model output at integer timestep(s) `t` (scalar or `(B,)`), each shaped like `x_t`."""
    alpha, sigma = schedule.coefficients(t)
    return split_prediction(model_out, x_t, _bcast(alpha, x_t), _bcast(sigma, x_t), prediction)


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Forward process: `x_t = alpha_t * x0 + sigma_t * noise` for `x0` `(B, ...)` and `t` `(B,)` int."""
    alpha, sigma = schedule.coefficients(t)
    return _bcast(alpha, x0) * x0 + _bcast(sigma, x0) * noise


def training_target(schedule: Schedule, x0: jax.Array, noise: jax.Array, t: jax.Array, prediction: str) -> jax.Array:
    """What the network should output at `x_t = q_sample(x0, t, noise)`: eps, v or x0, shaped like `x0`."""
    check_prediction(prediction)
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    alpha, sigma = schedule.coefficients(t)
    return _bcast(alpha, x0) * noise - _bcast(sigma, x0) * x0


def loss_weight(
    schedule: Schedule,
    t: jax.Array,
    prediction: str,
    weighting: str = "uniform",
    min_snr_gamma: float = 5.0,
) -> jax.Array:
    """Per-example weight `(B,)` on the MSE of `prediction` at timesteps `t` `(B,)`.

    `min_snr` (Hang et al. 2023) weights each timestep as if the loss were
    `min(snr, gamma) * |x0 - x0_hat|^2`, expressed on the predicted quantity:
    eps: `min(snr, gamma) / snr` (1 at snr = 0, its limit); v: `min(snr, gamma) / (snr + 1)`
    (0 at snr = 0, fine under ZTSNR); x0: `min(snr, gamma)`.
    `eps_mse` makes the loss the MSE of the noise the prediction implies
    (`|eps - eps_hat|^2 = alpha^2 |v - v_hat|^2 = snr |x0 - x0_hat|^2`): eps: 1, v:
    `snr / (snr + 1)`, x0: `snr`. With v it keeps v's well-posed target under
    zero terminal SNR but spends less of the loss on the noisiest steps and
    more on detail, as eps-prediction does (docs/demo.md measures what it buys).
    """
    check_prediction(prediction)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; allowed: {WEIGHTINGS}")
    t = jnp.asarray(t)
    if weighting == "uniform":
        return jnp.ones(t.shape, jnp.float32)
    if weighting == "eps_mse":
        snr = schedule.snr[t].astype(jnp.float32)
        return {"eps": jnp.ones(t.shape, jnp.float32), "v": snr / (snr + 1.0), "x0": snr}[prediction]
    if not min_snr_gamma > 0:
        raise ValueError(f"min_snr_gamma must be > 0, got {min_snr_gamma}")
    snr = schedule.snr[t]
    clipped = jnp.minimum(snr, min_snr_gamma)
    if prediction == "eps":
        return jnp.where(snr > 0, clipped / jnp.where(snr > 0, snr, 1.0), 1.0)
    if prediction == "v":
        return clipped / (snr + 1.0)
    return clipped


def diffusion_loss(
    schedule: Schedule,
    model_out: jax.Array,
    x0: jax.Array,
    noise: jax.Array,
    t: jax.Array,
    prediction: str,
    weighting: str = "uniform",
    min_snr_gamma: float = 5.0,
) -> jax.Array:
    """Weighted per-example MSE `(B,)` between `model_out` and the training target, in float32.

    The mean is over all non-batch axes; average over the batch (or mask) in the caller.
    """
    target = training_target(schedule, x0, noise, t, prediction)
    err = jnp.square(model_out.astype(jnp.float32) - target.astype(jnp.float32))
    mse = jnp.mean(err.reshape(err.shape[0], -1), axis=1)
    return mse * loss_weight(schedule, t, prediction, weighting, min_snr_gamma)
