"""Which parameters of the whole model bundle train, by path (U-Net rule from models.trainable)."""

from __future__ import annotations

from typing import Callable

from emu_jax.models import trainable as unet_trainable


def make_trainable_rule(mode: str, train_text: bool = False) -> Callable[[tuple[str, ...]], bool]:
    """Predicate on bundle paths ('unet' | 'vae' | 'text', ...): the U-Net by `mode`
    ('temporal' for F and I, 'spatial' for text-to-image, 'all'), text encoders when
    `train_text` (the demo learns its own), the VAE never (trained separately)."""
    if mode not in unet_trainable.MODES:
        raise ValueError(f"train.trainable={mode!r} not in {unet_trainable.MODES}")

    def rule(path: tuple[str, ...]) -> bool:
        if path[0] == "unet":
            return unet_trainable.is_trainable(path[1:], mode)
        return path[0] == "text" and train_text

    return rule
