"""Optimiser of the recipe: AdamW, linear warm-up then constant (SPEC) or cosine-decayed LR, global-norm
clipping."""

from __future__ import annotations

from typing import Any

import optax

DECAYS = ("constant", "cosine")


def lr_schedule(
    peak_lr: float, warmup_steps: int, decay: str = "constant", total_steps: int = 0, end_lr_ratio: float = 0.1
) -> optax.Schedule:
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then constant (SPEC) or, with
    decay='cosine', a cosine from `peak_lr` to `end_lr_ratio * peak_lr` at `total_steps`."""
    if decay == "cosine":
        after = optax.cosine_decay_schedule(peak_lr, max(1, total_steps - warmup_steps), alpha=end_lr_ratio)
    else:
        after = optax.constant_schedule(peak_lr)
    if warmup_steps <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak_lr, warmup_steps), after], [warmup_steps])


def make_optimizer(opt: Any, total_steps: int = 0) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """`opt`: a config section with lr, warmup_steps, b1, b2, eps, weight_decay, grad_clip and optionally
    decay ('constant' | 'cosine', over `total_steps`) and end_lr_ratio."""
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
    schedule = lr_schedule(opt.lr, opt.warmup_steps, decay, total_steps, end)
    parts = []
    if opt.grad_clip and opt.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(opt.grad_clip))
    parts.append(optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay))
    return optax.chain(*parts), schedule
