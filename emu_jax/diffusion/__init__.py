"""Diffusion core: noise schedules, parameterisations and losses, samplers, classifier-free guidance.

Pure functions only (no parameters); see each module's docstring.
"""

from emu_jax.diffusion.guidance import cfg_text, cfg_two_condition, guided_denoise_fn, rescale_guidance
from emu_jax.diffusion.objectives import diffusion_loss, loss_weight, predict_x0_eps, q_sample, training_target
from emu_jax.diffusion.samplers import sample, timesteps, validate_sampling_args
from emu_jax.diffusion.schedules import Schedule, make_schedule

__all__ = [
    "Schedule",
    "cfg_text",
    "cfg_two_condition",
    "diffusion_loss",
    "guided_denoise_fn",
    "loss_weight",
    "make_schedule",
    "predict_x0_eps",
    "q_sample",
    "rescale_guidance",
    "sample",
    "timesteps",
    "training_target",
    "validate_sampling_args",
]
