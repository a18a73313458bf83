"""Shared helpers for the diffusion tests: a fixed nonlinear "denoiser" in torch and jax, and a diffusers runner.

Not a test module (no `test_` prefix); the diffusion tests import it.
"""

from __future__ import annotations

import numpy as np


def denoise_jax(x, t, prediction, alphas_cumprod):
    """A fixed nonlinear "network" of `x` `(B, H, W, C)` and `t` `(B,)`, output in `prediction` form.

    It guesses x0 = tanh(.) * cos(t / 400) + 0.3 x sin(t / 250) and converts that guess to
    eps / v with the given alphas_cumprod, so that sampled values stay O(1) as with a trained model.
    """
    import jax.numpy as jnp

    tf = jnp.asarray(t, jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
    x0 = jnp.tanh(0.7 * x + 0.2 * jnp.roll(x, 1, axis=-1)) * jnp.cos(tf / 400.0) + 0.3 * x * jnp.sin(tf / 250.0)
    ac = jnp.asarray(alphas_cumprod, jnp.float32)[jnp.asarray(t)].reshape(tf.shape)
    return _to_prediction(x0, x, ac**0.5, (1 - ac) ** 0.5, prediction)


def denoise_torch(x, t, prediction, alphas_cumprod):
    """The same function as `denoise_jax` for a torch `x` and a scalar torch timestep (int or integral float)."""
    import torch

    tf = torch.as_tensor(t).to(torch.float32)
    x0 = torch.tanh(0.7 * x + 0.2 * torch.roll(x, 1, dims=-1)) * torch.cos(tf / 400.0) + 0.3 * x * torch.sin(tf / 250.0)
    ac = torch.from_numpy(np.asarray(alphas_cumprod, np.float32))[int(t)]
    return _to_prediction(x0, x, ac**0.5, (1 - ac) ** 0.5, prediction)


def _to_prediction(x0, x, alpha, sigma, prediction):
    if prediction == "x0":
        return x0
    eps = (x - alpha * x0) / sigma
    return eps if prediction == "eps" else alpha * eps - sigma * x0


DIFFUSERS_PREDICTION = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


def make_diffusers_scheduler(
    method, *, prediction, spacing, zero_snr, steps_offset=0, beta_schedule="scaled_linear", set_alpha_to_one=True
):
    """The diffusers scheduler our `method` claims to equal, with its own (float32) schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    common = dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="squaredcos_cap_v2" if beta_schedule == "cosine" else beta_schedule,
        rescale_betas_zero_snr=zero_snr,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
        timestep_spacing=spacing,
        steps_offset=steps_offset,
    )
    if method == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=set_alpha_to_one)
    if method == "ddpm":
        return DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    if method == "euler":
        return EulerDiscreteScheduler(**common)
    return DPMSolverMultistepScheduler(**common, solver_order=2, algorithm_type="dpmsolver++")


def run_diffusers(
    method,
    x_T,
    model_alphas_cumprod,
    *,
    num_steps,
    prediction,
    spacing,
    zero_snr,
    noise=None,
    eta=0.0,
    steps_offset=0,
    beta_schedule="scaled_linear",
    set_alpha_to_one=True,
    timesteps=None,
):
    """Sample with diffusers the way its pipelines do; returns (timesteps, final x, VP-space trajectory (S, ...))."""
    import torch
    from diffusers.schedulers import scheduling_ddpm

    sched = make_diffusers_scheduler(
        method,
        prediction=prediction,
        spacing=spacing,
        zero_snr=zero_snr,
        steps_offset=steps_offset,
        beta_schedule=beta_schedule,
        set_alpha_to_one=set_alpha_to_one,
    )
    if timesteps is not None:
        sched.set_timesteps(timesteps=[int(t) for t in timesteps])
    else:
        sched.set_timesteps(num_steps)
    x = torch.from_numpy(np.asarray(x_T, np.float32)) * sched.init_noise_sigma
    traj = []
    original_randn = scheduling_ddpm.randn_tensor
    try:
        for i, t in enumerate(sched.timesteps):
            out = denoise_torch(sched.scale_model_input(x, t), t, prediction, model_alphas_cumprod)
            kwargs = {}
            if method == "ddim" and eta > 0:
                kwargs = dict(eta=eta, variance_noise=torch.from_numpy(noise[i]))
            if method == "ddpm":
                scheduling_ddpm.randn_tensor = lambda *a, _n=noise[i], **k: torch.from_numpy(_n)
            x = sched.step(out, t, x, **kwargs).prev_sample
            vp = x / (sched.sigmas[i + 1] ** 2 + 1) ** 0.5 if method == "euler" else x
            traj.append(vp.numpy().copy())
    finally:
        scheduling_ddpm.randn_tensor = original_randn
    return np.asarray(sched.timesteps.numpy()), x.numpy(), np.stack(traj)
