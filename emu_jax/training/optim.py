"""Optimiser of the recipe: AdamW, linear warm-up then constant (SPEC) or cosine-decayed LR, global-norm
clipping.

The schedule's numbers (peak LR, warm-up, length, end ratio), the EMA decay and the seed are runtime inputs
of the compiled step (`hyperparams`), not constants in it: runs that differ only in them (a recipe's
sub-stages, an ablation's LR arms, a seed sweep) share one compiled program through the compilation cache.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

DECAYS = ("constant", "cosine")
# The optimiser fields `hyperparams` turns into runtime inputs; every other field is compiled into the step.
RUNTIME_FIELDS = ("lr", "warmup_steps", "decay", "end_lr_ratio")


def hyperparams(opt: Any, total_steps: int = 0, ema_decay: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """The step's runtime scalars from a config section with lr, warmup_steps and optionally decay
    ('constant' | 'cosine', over `total_steps`) and end_lr_ratio; ValueError names a bad value."""
    if not opt.lr > 0:
        raise ValueError(f"train.optimizer.lr must be > 0, got {opt.lr}")
    if opt.warmup_steps < 0:
        raise ValueError(f"train.optimizer.warmup_steps must be >= 0, got {opt.warmup_steps}")
    decay, end = opt.get("decay", "constant"), float(opt.get("end_lr_ratio", 0.1))
    if decay not in DECAYS:
        raise ValueError(f"train.optimizer.decay={decay!r} is not one of {DECAYS}")
    if decay == "cosine" and (total_steps <= opt.warmup_steps or not 0.0 <= end <= 1.0):
        raise ValueError(
            f"cosine decay needs train.steps ({total_steps}) > warmup_steps ({opt.warmup_steps}) "
            f"and end_lr_ratio in [0, 1] (got {end})"
        )
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1), got {ema_decay}")
    return {
        "lr": np.float32(opt.lr),
        "warmup": np.float32(opt.warmup_steps),
        # A constant LR is the cosine that ends where it starts.
        "decay_steps": np.float32(max(1, total_steps - opt.warmup_steps)),
        "end_ratio": np.float32(end if decay == "cosine" else 1.0),
        "ema_decay": np.float32(ema_decay),
        "seed": np.uint32(seed),
    }


def lr_at(step: jax.Array, hp: dict) -> jax.Array:
    """Linear warm-up from 0 to hp['lr'] over hp['warmup'] steps, then a cosine to end_ratio * lr over
    decay_steps (optax's warm-up and cosine_decay_schedule, with traced numbers)."""
    step = jnp.asarray(step, jnp.float32)
    warm = hp["lr"] * step / jnp.maximum(hp["warmup"], 1.0)
    frac = jnp.clip(step - hp["warmup"], 0.0, hp["decay_steps"]) / hp["decay_steps"]
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    after = hp["lr"] * ((1.0 - hp["end_ratio"]) * cosine + hp["end_ratio"])
    return jnp.where(step < hp["warmup"], warm, after)


def make_tx(opt: Any) -> Callable[[dict], optax.GradientTransformation]:
    """`hp -> AdamW` (with clipping when opt.grad_clip > 0): build it inside the step from the traced
    `hyperparams`; its state's structure does not depend on them."""

    def tx(hp: dict) -> optax.GradientTransformation:
        parts = [optax.clip_by_global_norm(opt.grad_clip)] if opt.grad_clip and opt.grad_clip > 0 else []
        adam = optax.adamw(lambda s: lr_at(s, hp), b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay)
        return optax.chain(*parts, adam)

    return tx


def make_optimizer(opt: Any, total_steps: int = 0) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimiser with its numbers fixed (compiled in), and its LR schedule: for steps without runtime
    hyperparameters (the autoencoder's)."""
    hp = hyperparams(opt, total_steps)
    return make_tx(opt)(hp), lambda s: lr_at(s, hp)
