"""Frozen (inference-only) batch norm shared by the metric networks.

Metric networks never train, so running statistics live in `params` beside
the affine terms: one tree to convert, shard and pass to `apply`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class FrozenBatchNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis; `use_scale=False` as Sonnet's I3D."""

    eps: float = 1e-3
    use_scale: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        mean = self.param("mean", nn.initializers.zeros, (c,))
        var = self.param("var", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.use_scale:
            y = y * self.param("scale", nn.initializers.ones, (c,))
        return y + bias


def as_float(x, dtype=jnp.float32) -> jax.Array:
    """uint8 in [0, 255] -> float in [0, 1]; float input is taken as already in [0, 1]."""
    x = jnp.asarray(x)
    return x.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else x.astype(dtype)
