"""Optimiser of the recipe: AdamW, linear warm-up then constant LR, global-norm clipping."""

from __future__ import annotations

from typing import Any

import optax


def lr_schedule(peak_lr: float, warmup_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then constant (SPEC)."""
    if warmup_steps <= 0:
        return optax.constant_schedule(peak_lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak_lr, warmup_steps), optax.constant_schedule(peak_lr)],
        [warmup_steps])


def make_optimizer(opt: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """`opt`: a config section with lr, warmup_steps, b1, b2, eps, weight_decay, grad_clip."""
    if not opt.lr > 0:
        raise ValueError(f"train.optimizer.lr must be > 0, got {opt.lr}")
    if opt.warmup_steps < 0:
        raise ValueError(f"train.optimizer.warmup_steps must be >= 0, got {opt.warmup_steps}")
    schedule = lr_schedule(opt.lr, opt.warmup_steps)
    parts = []
    if opt.grad_clip and opt.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(opt.grad_clip))
    parts.append(optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay))
    return optax.chain(*parts), schedule
