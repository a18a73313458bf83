"""Temporal attention on frame-major tokens equals the per-pixel formulation written out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from emu_jax.models.temporal import TemporalAttention


def _ln(x, p, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * p["scale"] + p["bias"]


def _attn(q_in, kv_in, p, heads):
    """Multi-head softmax attention per row of `(R, Lq, C)` against `(R, Lk, D)`, numpy float64."""
    q, k, v = (x @ p[n]["kernel"] for x, n in ((q_in, "to_q"), (kv_in, "to_k"), (kv_in, "to_v")))
    split = lambda t: t.reshape(t.shape[:2] + (heads, -1))  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    s = np.einsum("rqnh,rknh->rnqk", q, k) / math.sqrt(q.shape[-1])
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = np.einsum("rnqk,rknh->rqnh", w, v).reshape(q.shape[:2] + (-1,))
    return out @ p["to_out_0"]["kernel"] + p["to_out_0"]["bias"]


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def reference(params, x, ctx, frames, heads, groups):
    """diffusers TransformerTemporalModel's order of operations: each pixel's frames are one sequence."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    b = n // frames
    xg = x.reshape(b, frames, h, w, groups, c // groups)
    mu = xg.mean((1, 2, 3, 5), keepdims=True)
    var = ((xg - mu) ** 2).mean((1, 2, 3, 5), keepdims=True)
    y = ((xg - mu) / np.sqrt(var + 1e-6)).reshape(b, frames, h, w, c) * p["norm"]["scale"] + p["norm"]["bias"]
    y = y.transpose(0, 2, 3, 1, 4).reshape(b * h * w, frames, c)  # (pixels, frames, C)
    y = y @ p["proj_in"]["kernel"] + p["proj_in"]["bias"]
    half = c // 2
    ang = np.arange(frames)[:, None] * np.exp(-math.log(10000.0) * np.arange(half) / half)[None]
    y = y + np.concatenate([np.cos(ang), np.sin(ang)], -1)[None]
    blk = p["transformer_blocks_0"]
    y = y + _attn(_ln(y, blk["norm1"]), _ln(y, blk["norm1"]), blk["attn1"], heads)
    q = _ln(y, blk["norm2"]).reshape(b, h * w * frames, c)  # per video, all tokens query its context
    y = y + _attn(q, np.asarray(ctx, np.float64), blk["attn2"], heads).reshape(y.shape)
    hid = _ln(y, blk["norm3"]) @ blk["ff"]["net_0"]["proj"]["kernel"] + blk["ff"]["net_0"]["proj"]["bias"]
    a, g = np.split(hid, 2, -1)
    y = y + (a * _gelu(g)) @ blk["ff"]["net_2"]["kernel"] + blk["ff"]["net_2"]["bias"]
    y = y @ p["proj_out"]["kernel"] + p["proj_out"]["bias"]
    return x + y.reshape(b, h, w, frames, c).transpose(0, 3, 1, 2, 4).reshape(n, h, w, c)


@pytest.mark.slow  # ~9 s for both frame counts: a per-pixel reference loop
@pytest.mark.parametrize("frames", [3, 4])
def test_frame_major_layout_matches_per_pixel_reference(frames):
    rng = np.random.default_rng(frames)
    b, h, w, c, heads, groups = 2, 3, 5, 16, 2, 4
    x = jnp.asarray(rng.normal(size=(b * frames, h, w, c)), jnp.float32)
    ctx = jnp.asarray(rng.normal(size=(b, 6, 16)), jnp.float32)
    mod = TemporalAttention(frames, heads, 1, groups, "xla", cross_attention=True)
    params = meta.unbox(mod.init(jax.random.key(0), x, ctx)["params"])
    # Away from the identity init (zero proj_out / attn2 output), so every sub-layer shows up.
    params = jax.tree.map(lambda a: a + 0.3 * jnp.asarray(rng.normal(size=a.shape), jnp.float32), params)
    got = np.asarray(jax.jit(lambda p: mod.apply({"params": p}, x, ctx))(params))
    want = reference(params, x, ctx, frames, heads, groups)
    assert np.abs(want - np.asarray(x)).max() > 0.1  # the block really changes its input
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    # Frames of different videos never mix: changing video 1 leaves video 0's output alone.
    x2 = x.at[frames:].set(0.0)
    got2 = np.asarray(jax.jit(lambda p: mod.apply({"params": p}, x2, ctx))(params))
    np.testing.assert_allclose(got2[:frames], got[:frames], rtol=1e-5, atol=1e-5)
