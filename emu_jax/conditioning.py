"""Conditioning channels for the U-Net: image-to-video (F) and frame interpolation (I).

Both models see `cond = [given latents zero-padded to T frames, binary mask]`
concatenated on channels (SPEC "image conditioning" and "Interpolation model
I"). F gives frame 0; I gives every `factor`-th slot of a longer clip. The
conditioning latents can be noise-augmented (I: t ~ U[0, 250] in training,
t = 100 at inference), with level 0 meaning "clean".

Array names end in their layout (docs/unet.md "Shape names"): T given frames,
S slots of the interpolated clip; a digit is an axis of that fixed size.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def image_condition(image_latent: jax.Array, num_frames: int) -> jax.Array:
    """`[image latent at frame 0, zeros elsewhere, mask]`.

    image_latent: (B, H, W, C) or (B, 1, H, W, C). Returns (B, T, H, W, C + 1).
    """
    if image_latent.ndim == 4:
        image_latent = image_latent[:, None]
    if image_latent.ndim != 5 or image_latent.shape[1] != 1:
        raise ValueError(f"image latent must be (B, H, W, C) or (B, 1, H, W, C), got shape {image_latent.shape}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    b, _, h, w, c = image_latent.shape
    padded_BTHWC = jnp.zeros((b, num_frames, h, w, c), image_latent.dtype).at[:, 0].set(image_latent[:, 0])
    mask_BTHW1 = jnp.zeros((b, num_frames, h, w, 1), image_latent.dtype).at[:, 0].set(1.0)
    return jnp.concatenate([padded_BTHWC, mask_BTHW1], axis=-1)


def drop_condition(cond_BTHWC: jax.Array, keep_B: jax.Array) -> jax.Array:
    """Zero the conditioning of examples where `keep` (B,) is False (classifier-free dropout).

    The mask channel is dropped too, so "no image" looks the same at training
    and at sampling time (`cond=None` means zeros).
    """
    return cond_BTHWC * keep_B.astype(cond_BTHWC.dtype)[:, None, None, None, None]


@dataclasses.dataclass(frozen=True)
class SlotLayout:
    """Where given frames sit in the interpolated clip.

    Given frame k sits at slot `pad + factor * k`; SPEC's default (8 given,
    factor 4, pad 4) gives 37 slots with the inputs at 4, 8, ..., 32.
    """

    num_given: int = 8
    factor: int = 4
    pad: int = 4

    def __post_init__(self):
        if self.num_given < 2 or self.factor < 1 or self.pad < 0:
            raise ValueError(f"slot layout needs num_given >= 2, factor >= 1, pad >= 0; got {self}")

    @property
    def num_slots(self) -> int:
        return 2 * self.pad + (self.num_given - 1) * self.factor + 1

    @property
    def given_slots(self) -> np.ndarray:
        return self.pad + self.factor * np.arange(self.num_given)

    def mask(self) -> np.ndarray:
        m = np.zeros(self.num_slots, np.float32)
        m[self.given_slots] = 1.0
        return m

    def check_frames(self, num_frames: int) -> None:
        if num_frames != self.num_given:
            raise ValueError(
                f"the interpolation layout takes {self.num_given} given frames "
                f"(slots {self.given_slots.tolist()} of {self.num_slots}), got {num_frames}"
            )


def interleave(frames_BTHWC: jax.Array, layout: SlotLayout) -> jax.Array:
    """Place (B, T, H, W, C) given frames (T = num_given) into their slots of a zero (B, S, H, W, C) clip."""
    layout.check_frames(frames_BTHWC.shape[1])
    b, _, h, w, c = frames_BTHWC.shape
    out_BSHWC = jnp.zeros((b, layout.num_slots, h, w, c), frames_BTHWC.dtype)
    return out_BSHWC.at[:, layout.given_slots].set(frames_BTHWC)


def interpolation_condition(frames_BTHWC: jax.Array, layout: SlotLayout) -> jax.Array:
    """`[interleaved given latents, slot mask]`: (B, T, H, W, C) -> (B, S, H, W, C + 1)."""
    x_BSHWC = interleave(frames_BTHWC, layout)
    mask_1S111 = jnp.asarray(layout.mask(), frames_BTHWC.dtype)[None, :, None, None, None]
    mask_BSHW1 = jnp.broadcast_to(mask_1S111, x_BSHWC.shape[:-1] + (1,))
    return jnp.concatenate([x_BSHWC, mask_BSHW1], axis=-1)


def given_frames(clip_BS: jax.Array, layout: SlotLayout) -> jax.Array:
    """The frames of a (B, S, ...) clip at the given slots: the model's inputs in training."""
    if clip_BS.shape[1] != layout.num_slots:
        raise ValueError(f"clip has {clip_BS.shape[1]} frames, layout expects {layout.num_slots}")
    return clip_BS[:, layout.given_slots]


def augmentation_alpha_bar(alphas_cumprod: jax.Array, level: jax.Array) -> jax.Array:
    """alpha_bar for augmentation `level` in [0, N]: 1 at level 0, alphas_cumprod[level-1] above."""
    padded = jnp.concatenate([jnp.ones((1,), alphas_cumprod.dtype), alphas_cumprod])
    return padded[level]


def noise_augment(latents: jax.Array, level: jax.Array, alphas_cumprod: jax.Array, rng: jax.Array) -> jax.Array:
    """Forward-diffuse conditioning latents (B, ...) to per-example `level` (B,); 0 leaves them as is."""
    a = augmentation_alpha_bar(alphas_cumprod, level).astype(latents.dtype)
    a = a.reshape((-1,) + (1,) * (latents.ndim - 1))
    noise = jax.random.normal(rng, latents.shape, latents.dtype)
    return jnp.sqrt(a) * latents + jnp.sqrt(1.0 - a) * noise


def stitch_halves(first_BS: jax.Array, second_BS: jax.Array, layout: SlotLayout) -> jax.Array:
    """Join the interpolations of two consecutive (B, S, ...) halves of a clip, overlap dropped.

    The first half keeps its leading slots and the `factor - 1` new frames after its
    last given frame; the second contributes its first given frame through its
    last given frame. With SPEC's layout, 2 x 37 slots become 65 frames in
    which each of the 16 given frames appears once, in order.
    """
    for name, x_BS in (("first", first_BS), ("second", second_BS)):
        if x_BS.shape[1] != layout.num_slots:
            raise ValueError(f"{name} half has {x_BS.shape[1]} frames, layout expects {layout.num_slots}")
    last = int(layout.given_slots[-1])
    head_BT = first_BS[:, : last + layout.factor]
    tail_BT = second_BS[:, layout.pad : last + 1]
    return jnp.concatenate([head_BT, tail_BT], axis=1)


def stitched_given_positions(layout: SlotLayout) -> np.ndarray:
    """Indices in the stitched clip where the 2 * num_given given frames sit."""
    first = layout.given_slots
    offset = int(layout.given_slots[-1]) + layout.factor - layout.pad
    return np.concatenate([first, layout.given_slots + offset])


def output_given_positions(num_given_frames: int, layout: SlotLayout) -> np.ndarray:
    """Where the `num_given_frames` given frames sit in the interpolated output: the slots of one
    window, or of two stitched halves (`stitch_halves`)."""
    if num_given_frames == layout.num_given:
        return layout.given_slots
    if num_given_frames == 2 * layout.num_given:
        return stitched_given_positions(layout)
    raise ValueError(
        f"{num_given_frames} given frames: the layout interpolates {layout.num_given} "
        f"(one window) or {2 * layout.num_given} (two halves)"
    )
