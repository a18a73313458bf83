"""The training loss and the jitted update step, for the three tasks of the recipe.

- `t2i`: text-to-image on single frames, temporal layers off (the keyframe model).
- `t2v`: model F, video from the first frame's latent + text (SPEC Eq. conditioning).
- `interp`: model I, 37 frames from 8 noise-augmented given frames + text.
Condition dropout (text / image / both) trains the unconditional branches that
classifier-free guidance needs. A non-finite loss or gradient leaves the state
unchanged and is reported in the metrics, so a bad update is never saved.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from emu_jax import conditioning
from emu_jax.diffusion import objectives
from emu_jax.diffusion.schedules import Schedule
from emu_jax.models.trainable import merge_params
from emu_jax.training.state import TrainState, ema_update

TASKS = ("t2i", "t2v", "interp")


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """Everything about the loss that is static under jit."""

    task: str
    prediction: str
    weighting: str = "uniform"
    min_snr_gamma: float = 5.0
    drop_text: float = 0.0
    drop_image: float = 0.0
    drop_both: float = 0.0
    aug_max_level: int = 250  # interp: conditioning noise level ~ U[0, aug_max_level]
    layout: conditioning.SlotLayout = conditioning.SlotLayout()

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown train task {self.task!r}; allowed: {TASKS}")
        objectives.check_prediction(self.prediction)
        if self.weighting not in objectives.WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {self.weighting!r}; allowed: {objectives.WEIGHTINGS}")
        if self.weighting == "min_snr" and not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be > 0, got {self.min_snr_gamma}")
        rates = (self.drop_text, self.drop_image, self.drop_both)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0:
            raise ValueError(f"condition dropout rates (text, image, both) = {rates} must be in [0, 1] "
                             "and sum to at most 1")


def _dropout_masks(rng: jax.Array, batch: int, spec: LossSpec) -> tuple[jax.Array, jax.Array]:
    """(keep_text, keep_image) per example, from one uniform draw so the cases are exclusive."""
    u = jax.random.uniform(rng, (batch,))
    drop_text_only = u < spec.drop_text
    drop_image_only = (u >= spec.drop_text) & (u < spec.drop_text + spec.drop_image)
    drop_both = (u >= spec.drop_text + spec.drop_image) & (u < spec.drop_text + spec.drop_image + spec.drop_both)
    return ~(drop_text_only | drop_both), ~(drop_image_only | drop_both)


def loss_fn(model: Any, schedule: Schedule, spec: LossSpec, params: Any, batch: dict,
            rng: jax.Array) -> tuple[jax.Array, dict]:
    """Mean diffusion loss over the batch; `model` is an `EmuModel`."""
    r_vae, r_t, r_noise, r_drop, r_frame, r_aug, r_aug_noise = jax.random.split(rng, 7)
    latents = model.batch_latents(params, batch, r_vae)  # (B, T, h, w, c)
    b = latents.shape[0]
    keep_text, keep_image = _dropout_masks(r_drop, b, spec)
    contexts, context_masks = model.batch_contexts(params, batch, keep_text)

    cond, cond_level, image_mode = None, None, False
    if spec.task == "t2i":
        # One random frame per clip: a text-to-image example.
        idx = jax.random.randint(r_frame, (b,), 0, latents.shape[1])
        latents = latents[jnp.arange(b), idx][:, None]
        image_mode = True
    elif spec.task == "t2v":
        cond = conditioning.drop_condition(
            conditioning.image_condition(latents[:, 0], latents.shape[1]), keep_image)
    else:
        given = conditioning.given_frames(latents, spec.layout)
        cond_level = jax.random.randint(r_aug, (b,), 0, spec.aug_max_level + 1)
        given = conditioning.noise_augment(given, cond_level, schedule.alphas_cumprod, r_aug_noise)
        cond = conditioning.drop_condition(conditioning.interpolation_condition(given, spec.layout), keep_image)

    t = jax.random.randint(r_t, (b,), 0, schedule.num_train_steps)
    noise = jax.random.normal(r_noise, latents.shape, latents.dtype)
    x_t = objectives.q_sample(schedule, latents, t, noise)
    out = model.denoise(params, x_t, t, contexts, cond=cond, image_mode=image_mode,
                        cond_level=cond_level, context_masks=context_masks)
    per_example = objectives.diffusion_loss(schedule, out, latents, noise, t, spec.prediction,
                                            spec.weighting, spec.min_snr_gamma)
    return per_example.mean(), {"t_mean": t.astype(jnp.float32).mean()}


def make_train_step(model: Any, schedule: Schedule, spec: LossSpec, tx: optax.GradientTransformation,
                    lr_fn: Callable, seed: int, ema_decay: float = 0.0) -> Callable:
    """`step(state, batch) -> (state, metrics)`; jit it with shardings and `donate_argnums=0`."""
    base_key = jax.random.key(seed)

    def step(state: TrainState, batch: dict):
        rng = jax.random.fold_in(base_key, state.step)

        def objective(trainable):
            return loss_fn(model, schedule, spec, merge_params(trainable, state.frozen), batch, rng)

        (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.trainable)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
        trainable = optax.apply_updates(state.trainable, updates)
        ema = ema_update(state.ema, trainable, ema_decay) if state.ema else state.ema
        new = state.replace(step=state.step + 1, trainable=trainable, opt_state=opt_state, ema=ema)
        # A non-finite update is discarded (state kept) and flagged; the host aborts on it.
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": lr_fn(state.step),
                   "finite": finite, "step": state.step, **aux}
        return new, metrics

    return step
