"""The training loss and the jitted update step, for the three tasks of the recipe.

- `t2i`: text-to-image on single frames, temporal layers off (the keyframe model).
- `t2v`: model F, video from the first frame's latent + text (SPEC Eq. conditioning).
- `interp`: model I, 37 frames from 8 noise-augmented given frames + text.
Condition dropout (text / image / both) trains the unconditional branches that
classifier-free guidance needs. A non-finite loss or gradient leaves the state
unchanged and is reported in the metrics, so a bad update is never saved.

Every random draw of an example (VAE sample, timestep, noise, dropout, frame,
augmentation) comes from that example's own key, `fold_in(step key, global
example index)`, so splitting the batch into `microbatches` (gradient
accumulation: a `lax.scan` summing fp32 gradients, one optimiser update) gives
the same draws, loss and update as the whole batch at once.
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
from emu_jax.sharding import constrain
from emu_jax.training import optim
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
            raise ValueError(
                f"condition dropout rates (text, image, both) = {rates} must be in [0, 1] and sum to at most 1"
            )


def _per_example(draw: Callable, keys: jax.Array) -> jax.Array:
    """`draw(key)` for each example's key `(B,)`, stacked: independent of how the batch is split."""
    return jax.vmap(draw)(keys)


def _dropout_masks(keys: jax.Array, spec: LossSpec) -> tuple[jax.Array, jax.Array]:
    """(keep_text, keep_image) per example, from one uniform draw so the cases are exclusive."""
    u = _per_example(lambda k: jax.random.uniform(k, ()), keys)
    drop_text_only = u < spec.drop_text
    drop_image_only = (u >= spec.drop_text) & (u < spec.drop_text + spec.drop_image)
    drop_both = (u >= spec.drop_text + spec.drop_image) & (u < spec.drop_text + spec.drop_image + spec.drop_both)
    return ~(drop_text_only | drop_both), ~(drop_image_only | drop_both)


def loss_fn(
    model: Any,
    schedule: Schedule,
    spec: LossSpec,
    params: Any,
    batch: dict,
    rng: jax.Array,
    example_ids: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Mean diffusion loss over the batch; `model` is an `EmuModel`.

    `example_ids` `(B,)`: each example's index in the global batch (default 0..B-1); example i
    draws all its randomness from `fold_in(rng, example_ids[i])`.
    """
    b = jax.tree.leaves(batch)[0].shape[0]
    ids = jnp.arange(b) if example_ids is None else example_ids
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(rng, i), 7))(ids)  # (B, 7)
    r_vae, r_t, r_noise, r_drop, r_frame, r_aug, r_aug_noise = (keys[:, j] for j in range(7))
    latents = model.batch_latents(params, batch, r_vae)  # (B, T, h, w, c)
    keep_text, keep_image = _dropout_masks(r_drop, spec)
    contexts, context_masks = model.batch_contexts(params, batch, keep_text)

    cond, cond_level, image_mode = None, None, False
    if spec.task == "t2i":
        # One random frame per clip: a text-to-image example.
        idx = _per_example(lambda k: jax.random.randint(k, (), 0, latents.shape[1]), r_frame)
        latents = latents[jnp.arange(b), idx][:, None]
        image_mode = True
    elif spec.task == "t2v":
        cond = conditioning.drop_condition(conditioning.image_condition(latents[:, 0], latents.shape[1]), keep_image)
    else:
        # `given_latents` (B, num_given, h, w, c): the frames I is given come from elsewhere (e.g. F's
        # rendering of the clip), so I learns to read them; the target stays the clip's own frames.
        given = batch["given_latents"] if "given_latents" in batch else conditioning.given_frames(latents, spec.layout)
        cond_level = _per_example(lambda k: jax.random.randint(k, (), 0, spec.aug_max_level + 1), r_aug)
        # conditioning.noise_augment with per-example noise (its single-key draw would depend on B).
        a = conditioning.augmentation_alpha_bar(schedule.alphas_cumprod, cond_level).astype(given.dtype)
        a = a.reshape((-1,) + (1,) * (given.ndim - 1))
        aug_noise = _per_example(lambda k: jax.random.normal(k, given.shape[1:], given.dtype), r_aug_noise)
        given = jnp.sqrt(a) * given + jnp.sqrt(1.0 - a) * aug_noise
        cond = conditioning.drop_condition(conditioning.interpolation_condition(given, spec.layout), keep_image)

    t = _per_example(lambda k: jax.random.randint(k, (), 0, schedule.num_train_steps), r_t)
    noise = _per_example(lambda k: jax.random.normal(k, latents.shape[1:], latents.dtype), r_noise)
    x_t = objectives.q_sample(schedule, latents, t, noise)
    out = model.denoise(
        params, x_t, t, contexts, cond=cond, image_mode=image_mode, cond_level=cond_level, context_masks=context_masks
    )
    per_example = objectives.diffusion_loss(
        schedule, out, latents, noise, t, spec.prediction, spec.weighting, spec.min_snr_gamma
    )
    return per_example.mean(), {"t_mean": t.astype(jnp.float32).mean()}


def split_microbatches(batch: dict, microbatches: int) -> tuple[dict, jax.Array]:
    """`(B, ...)` arrays -> `(N, B/N, ...)` and the global example ids `(N, B/N)`.

    Microbatch k takes examples k, k+N, k+2N, ...: with the batch sharded in contiguous
    blocks over the data axes, every shard contributes equally to every microbatch, so no
    example moves between devices. Needs B / data shards divisible by N (`check_microbatches`).
    """
    b = jax.tree.leaves(batch)[0].shape[0]
    if b % microbatches:
        raise ValueError(f"batch of {b} examples is not divisible by train.microbatches={microbatches}")

    def split(x):
        y = jnp.swapaxes(x.reshape((b // microbatches, microbatches) + x.shape[1:]), 0, 1)
        return constrain(y, (None, "activation_batch") + (None,) * (x.ndim - 1))

    return jax.tree.map(split, batch), split(jnp.arange(b))


def check_microbatches(batch_size: int, data_shards: int, microbatches: int) -> None:
    """ValueError unless each data shard's share of the batch splits into `microbatches` equal parts."""
    if microbatches < 1:
        raise ValueError(f"train.microbatches must be >= 1, got {microbatches}")
    per_shard = batch_size // data_shards
    if batch_size % data_shards or per_shard % microbatches:
        raise ValueError(
            f"train.microbatches={microbatches} does not divide the per-data-shard batch "
            f"{batch_size}/{data_shards} = {batch_size / data_shards:g}; allowed: divisors of it"
        )


def make_train_step(
    model: Any,
    schedule: Schedule,
    spec: LossSpec,
    make_tx: Callable[[dict], optax.GradientTransformation],
    microbatches: int = 1,
) -> Callable:
    """`step(state, batch, hp) -> (state, metrics)`; jit it with shardings and `donate_argnums=0`.

    `hp`: `optim.hyperparams` (LR schedule, EMA decay, seed), traced, so one compiled step serves them all.
    `microbatches` N > 1 accumulates the gradient over N slices of the batch (same result as N = 1
    up to float summation order; activations of only B/N examples live at once)."""
    if microbatches < 1:
        raise ValueError(f"train.microbatches must be >= 1, got {microbatches}")

    def step(state: TrainState, batch: dict, hp: dict):
        rng = jax.random.fold_in(jax.random.key(hp["seed"]), state.step)
        tx = make_tx(hp)

        def objective(trainable, mb, ids):
            return loss_fn(model, schedule, spec, merge_params(trainable, state.frozen), mb, rng, ids)

        grad_fn = jax.value_and_grad(objective, has_aux=True)
        if microbatches == 1:
            b = jax.tree.leaves(batch)[0].shape[0]
            (loss, aux), grads = grad_fn(state.trainable, batch, jnp.arange(b))
        else:
            mbs, ids = split_microbatches(batch, microbatches)

            def accumulate(grad_sum, xs):
                (l, a), g = grad_fn(state.trainable, *xs)
                return jax.tree.map(lambda s, v: s + v.astype(jnp.float32), grad_sum, g), (l, a)

            zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.trainable)
            grads, (losses, auxes) = jax.lax.scan(accumulate, zeros, (mbs, ids))
            loss, aux = losses.mean(), jax.tree.map(lambda v: v.mean(), auxes)
            # Equal-size microbatches: the mean of their means is the batch mean (and its gradient).
            grads = jax.tree.map(lambda g, p: (g / microbatches).astype(p.dtype), grads, state.trainable)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
        trainable = optax.apply_updates(state.trainable, updates)
        ema = ema_update(state.ema, trainable, hp["ema_decay"]) if state.ema else state.ema
        new = state.replace(step=state.step + 1, trainable=trainable, opt_state=opt_state, ema=ema)
        # A non-finite update is discarded (state kept) and flagged; the host aborts on it.
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": optim.lr_at(state.step, hp),
            "finite": finite,
            "step": state.step,
            **aux,
        }
        return new, metrics

    return step
