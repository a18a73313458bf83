"""pytorch-fid's FID InceptionV3 (`InceptionV3(use_fid_inception=True)`) in Flax: pool3 features, 2048-d.

Module names mirror the torch state dict (`Mixed_5b.branch1x1.conv.weight`
-> `Mixed_5b/branch1x1/conv/kernel`) so `emu_jax.convert.inception` is a
renaming of `pt_inception-2015-12-05-6726825d.pth`. The FID variant differs
from torchvision's Inception3: its average pools exclude padding (as
TensorFlow's) and Mixed_7c's pool branch is a max pool. Input preprocessing
is pytorch-fid's: bilinear resize to 299 (align_corners=False, no
antialias) and [0, 1] -> [-1, 1].
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from emu_jax.metrics.layers import FrozenBatchNorm, as_float

FID_SIZE = 299
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    features: int
    kernel: Sequence[int] = (1, 1)
    strides: Sequence[int] = (1, 1)
    padding: Sequence[int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        pad = tuple((p, p) for p in self.padding)
        x = nn.Conv(self.features, tuple(self.kernel), tuple(self.strides), padding=pad, use_bias=False, name="conv")(x)
        return jax.nn.relu(FrozenBatchNorm(1e-3, name="bn")(x))


def _avg3(x):
    """3x3 stride-1 average that ignores the zero padding (pytorch-fid's TF-compatible patch)."""
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max3s2(x):
    return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv2d(64, name="branch1x1")(x)
        b5 = BasicConv2d(48, name="branch5x5_1")(x)
        b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = BasicConv2d(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(self.pool_features, name="branch_pool")(_avg3(x))
        return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(384, (3, 3), (2, 2), name="branch3x3")(x)
        bd = BasicConv2d(64, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, (3, 3), (2, 2), name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max3s2(x)], -1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        b1 = BasicConv2d(192, name="branch1x1")(x)
        b7 = BasicConv2d(c7, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, **row, name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, **col, name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, **col, name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, **row, name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, **col, name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(192, **row, name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(192, name="branch_pool")(_avg3(x))
        return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(192, name="branch3x3_1")(x)
        b3 = BasicConv2d(320, (3, 3), (2, 2), name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max3s2(x)], -1)


class InceptionE(nn.Module):
    pool: str  # "avg" (FIDInceptionE_1, Mixed_7b) or "max" (FIDInceptionE_2, Mixed_7c)

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        b1 = BasicConv2d(320, name="branch1x1")(x)
        b3 = BasicConv2d(384, name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [BasicConv2d(384, **row, name="branch3x3_2a")(b3), BasicConv2d(384, **col, name="branch3x3_2b")(b3)], -1
        )
        bd = BasicConv2d(448, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [BasicConv2d(384, **row, name="branch3x3dbl_3a")(bd), BasicConv2d(384, **col, name="branch3x3dbl_3b")(bd)],
            -1,
        )
        if self.pool == "max":
            pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
        else:
            pooled = _avg3(x)
        bp = BasicConv2d(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], -1)


class FIDInceptionV3(nn.Module):
    """(B, H, W, 3) in [-1, 1] (already resized) -> (B, 2048) pool3 features."""

    @nn.compact
    def __call__(self, x):
        x = BasicConv2d(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max3s2(x)
        x = BasicConv2d(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max3s2(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE("avg", name="Mixed_7b")(x)
        x = InceptionE("max", name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


def resize_bilinear(x_BHWC: jax.Array, size: int) -> jax.Array:
    """torch `F.interpolate(mode='bilinear', align_corners=False)`: half-pixel centres, no antialias."""
    b, _, _, c = x_BHWC.shape
    return jax.image.resize(x_BHWC, (b, size, size, c), method="bilinear", antialias=False)


def preprocess(images_BHWC, resize: bool = True) -> jax.Array:
    """uint8 [0, 255] or float [0, 1] images -> the network's input, as pytorch-fid's forward."""
    x = as_float(images_BHWC)
    if resize:
        x = resize_bilinear(x, FID_SIZE)
    return 2.0 * x - 1.0


def init_params(rng: jax.Array, size: int = 75) -> dict:
    """Random params (tests); 75 is the smallest input the network accepts."""
    return FIDInceptionV3().init(rng, jnp.zeros((1, size, size, 3)))["params"]


def features(params, images_BHWC, resize: bool = True) -> jax.Array:
    """pool3 features (B, 2048) of images (uint8 or [0, 1] floats), as pytorch-fid's `InceptionV3()(x)[0]`."""
    return FIDInceptionV3().apply({"params": params}, preprocess(images_BHWC, resize))
