"""Scaled dot-product attention, one implementation per backend, and the dispatcher that picks one.

All take `(B, Lq, N, H)` queries, `(B, Lk, N, H)` keys / values and an
optional `(B, Lk)` bool key mask (True = attend) and return `(B, Lq, N, H)`:

- "xla": `jax.nn.dot_product_attention`'s XLA path (materialises the fp32
  score matrix; the reference everything else is tested against).
- "cudnn": the same call with cuDNN's fused kernel (GPU, fp16 / bf16 only).
- "splash": TPU Pallas splash attention, under `jax.shard_map` over the
  mesh's batch (and head) axes; Pallas interpret mode on the CPU for tests.
- "blocked": pure-JAX flash attention (online softmax over key blocks, a
  `custom_vjp` backward that recomputes the blocks from the log-sum-exp), so
  memory is O(block_q * block_kv) per head whatever the sequence length.
- "auto": per platform and shape, see `resolve`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

IMPLS = ("auto", "xla", "cudnn", "splash", "blocked")
# None is jax's own default (its XLA path); kept so configs saved before `auto` existed load unchanged.
ATTENTION_IMPLS = IMPLS + (None,)
DEFAULT_BLOCK_Q = 512
DEFAULT_BLOCK_KV = 512
SPLASH_MIN_LENGTH = 1024  # a 32x32 latent: shorter sequences (text keys, 8 frames) are cheap on the XLA path
# Measured on this 2-core CPU (benchmarks/bench_attention.py --rounds 5, load ~4), once blocked scaled
# q once and chunked the batch: at 256 tokens blocked beats the XLA path in forward (8x4x256x32: 4.6
# vs 9.2 ms; 16x8x256x64: 33 vs 82 ms) and forward + backward (19 vs 22 ms; 161 vs 191 ms); at 128
# they tie, and short text keys / 8 frames stay on xla.
CPU_BLOCKED_MIN_LENGTH = 256
# Largest fp32 score tile (items x heads x block_q x block_kv) one blocked step holds on the CPU: the
# batch is mapped in chunks below it, since a tile over the whole batch (32 MiB for 8 frames x 4 heads
# x 512 x 512) spills the caches: see docs/unet.md "CPU performance" for the measurement.
CPU_TILE_BYTES = 8 << 20
_MASK_VALUE = -1e30  # finite, so a fully padded key block cannot turn the running max into -inf - -inf


def platform() -> str:
    """The platform being compiled for: the active mesh's devices (also under AOT for TPU), else the default."""
    mesh = jax.sharding.get_abstract_mesh()
    device = None if mesh.empty else getattr(mesh, "abstract_device", None)
    return getattr(device, "platform", None) or jax.default_backend()


def resolve(impl: str | None, plat: str, lq: int, lk: int, head_dim: int, dtype) -> str:
    """The concrete implementation "auto" (or None) stands for on `plat` at these shapes.

    TPU: splash when queries and keys are both >= SPLASH_MIN_LENGTH, else xla.
    GPU: cudnn for fp16 / bf16 with head_dim a multiple of 8 up to 128, else xla.
    CPU: xla unless both lengths reach CPU_BLOCKED_MIN_LENGTH (by measurement).
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention implementation {impl!r} not in {ATTENTION_IMPLS}")
    if impl is None:
        return "xla"
    if impl != "auto":
        return impl
    if plat == "tpu":
        return "splash" if min(lq, lk) >= SPLASH_MIN_LENGTH else "xla"
    if plat == "gpu":
        ok = jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) and head_dim % 8 == 0 and head_dim <= 128
        return "cudnn" if ok else "xla"
    return "blocked" if min(lq, lk) >= CPU_BLOCKED_MIN_LENGTH else "xla"


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array | None = None,
    impl: str | None = "auto",
    block_q: int = DEFAULT_BLOCK_Q,
    block_kv: int = DEFAULT_BLOCK_KV,
    interpret: bool | None = None,
) -> jax.Array:
    """Softmax(q k^T / sqrt(H)) v with implementation `impl`; `interpret` (splash) defaults to CPU = True."""
    if q.ndim != 4 or k.shape != v.shape or q.shape[::2] != k.shape[::2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"attention needs q (B, Lq, N, H) and k, v (B, Lk, N, H), got {q.shape}, {k.shape}, {v.shape}")
    if mask is not None and mask.shape != k.shape[:2]:
        raise ValueError(f"key mask has shape {mask.shape}, expected (B, Lk) = {k.shape[:2]}")
    plat = platform()
    chosen = resolve(impl, plat, q.shape[1], k.shape[1], q.shape[3], q.dtype)
    if chosen == "xla":
        return _jax_attention(q, k, v, mask, "xla")
    if chosen == "cudnn":
        if plat != "gpu":
            raise ValueError(f"attention_impl='cudnn' needs a GPU backend, this one is {plat!r}; use one of {IMPLS}")
        if jnp.dtype(q.dtype) not in (jnp.bfloat16, jnp.float16):
            raise ValueError(f"attention_impl='cudnn' needs float16 / bfloat16 inputs, got {q.dtype}")
        return _jax_attention(q, k, v, mask, "cudnn")
    if chosen == "blocked":
        tile = CPU_TILE_BYTES if plat == "cpu" else None
        return blocked_attention(q, k, v, mask, block_q, block_kv, tile)
    interpret = plat == "cpu" if interpret is None else interpret
    if plat != "tpu" and not interpret:
        raise ValueError(
            f"attention_impl='splash' needs a TPU backend (or interpret mode on the CPU), "
            f"this one is {plat!r}; use one of {IMPLS}"
        )
    return splash_attention(q, k, v, mask, block_q, block_kv, interpret)


def reference_attention(q, k, v, mask=None):
    """Plain einsum + softmax in float32: the ground truth for the tests."""
    f32 = lambda t: t.astype(jnp.float32)
    s = jnp.einsum("bqnh,bknh->bnqk", f32(q), f32(k)) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = jnp.where(mask[:, None, None, :], s, -jnp.inf)
    return jnp.einsum("bnqk,bknh->bqnh", jax.nn.softmax(s, axis=-1), f32(v)).astype(v.dtype)


def _jax_attention(q, k, v, mask, implementation):
    full_mask = None if mask is None else mask[:, None, None, :].astype(bool)  # (B, 1, 1, Lk)
    return jax.nn.dot_product_attention(q, k, v, mask=full_mask, implementation=implementation)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# ---- blocked (flash-attention-2 in plain JAX) -----------------------------------------------------


def blocked_attention(
    q,
    k,
    v,
    mask=None,
    block_q: int = DEFAULT_BLOCK_Q,
    block_kv: int = DEFAULT_BLOCK_KV,
    max_tile_bytes: int | None = None,
):
    """Memory-efficient attention: pads lengths to the blocks, masks padded keys, slices the output.

    `max_tile_bytes` bounds one step's fp32 score tile (items x heads x blocks): the batch is then
    processed in `lax.map` chunks of the largest divisor of B that fits (at least one item).
    """
    b, lq, n, h = q.shape
    bq, bk = min(block_q, lq), min(block_kv, k.shape[1])
    chunk = b
    if max_tile_bytes is not None:
        per_item = n * bq * bk * 4
        chunk = max([d for d in range(1, b + 1) if b % d == 0 and d * per_item <= max_tile_bytes], default=1)
    if chunk == b:
        return _blocked_items(q, k, v, mask, bq, bk)
    split = lambda t: None if t is None else t.reshape((b // chunk, chunk) + t.shape[1:])  # noqa: E731
    if mask is None:
        out = jax.lax.map(lambda a: _blocked_items(*a, None, bq, bk), (split(q), split(k), split(v)))
    else:
        out = jax.lax.map(lambda a: _blocked_items(*a, bq, bk), (split(q), split(k), split(v), split(mask)))
    return out.reshape(q.shape)


def _blocked_items(q, k, v, mask, bq: int, bk: int):
    """blocked_attention on all of `q`'s items at once, with block sizes already capped to the lengths."""
    b, lq, n, h = q.shape
    lk = k.shape[1]
    nq, nk = -(-lq // bq), -(-lk // bk)
    pad = lambda t, to: jnp.pad(t, [(0, 0), (0, to - t.shape[1])] + [(0, 0)] * (t.ndim - 2))
    # Leading block axis so lax.map / scan step over blocks: (nblocks, B, block, N, H).
    blocks = lambda t, nb: jnp.moveaxis(t.reshape((b, nb, -1) + t.shape[2:]), 1, 0)
    biasb = None  # no padded keys: no bias pass over every score tile
    if mask is not None or lk % bk:
        valid = jnp.ones((b, lk), bool) if mask is None else mask.astype(bool)
        biasb = blocks(jnp.where(pad(valid, nk * bk), 0.0, _MASK_VALUE).astype(jnp.float32), nk)
    # q scaled once here rather than every score tile (as splash does); autodiff scales dq back.
    q = (q.astype(jnp.float32) * (1.0 / math.sqrt(h))).astype(q.dtype)
    q, k, v = pad(q, nq * bq), pad(k, nk * bk), pad(v, nk * bk)
    out = _flash(blocks(q, nq), blocks(k, nk), blocks(v, nk), biasb)
    return jnp.moveaxis(out, 0, 1).reshape(b, nq * bq, n, h)[:, :lq]


def _scores(qi, kj, bj):
    """fp32 logits `(B, N, bq, bk)` of one (pre-scaled) query block against one key block, padded keys
    at -1e30 (`bj` None: no padded keys)."""
    s = jnp.einsum("bqnh,bknh->bnqk", qi, kj, preferred_element_type=jnp.float32)
    return s if bj is None else s + bj[:, None, None, :]


def _flash_forward(qb, kb, vb, biasb):
    def one_q_block(qi):
        b, bq, n, h = qi.shape

        def step(carry, kv):
            m, l, acc = carry
            kj, vj, bj = kv
            s = _scores(qi, kj, bj)
            m_new = jnp.maximum(m, s.max(-1))
            p = jnp.exp(s - m_new[..., None])
            corr = jnp.exp(m - m_new)
            acc = acc * corr[..., None] + jnp.einsum(
                "bnqk,bknh->bnqh", p.astype(vj.dtype), vj, preferred_element_type=jnp.float32
            )
            return (m_new, l * corr + p.sum(-1), acc), None

        init = (
            jnp.full((b, n, bq), -jnp.inf, jnp.float32),
            jnp.zeros((b, n, bq), jnp.float32),
            jnp.zeros((b, n, bq, h), jnp.float32),
        )
        (m, l, acc), _ = jax.lax.scan(step, init, (kb, vb, biasb))
        out = (acc / l[..., None]).astype(qi.dtype).transpose(0, 2, 1, 3)  # (B, bq, N, H)
        return out, m + jnp.log(l)

    return jax.lax.map(one_q_block, qb)  # (nq, B, bq, N, H), lse (nq, B, N, bq)


@jax.custom_vjp
def _flash(qb, kb, vb, biasb):
    return _flash_forward(qb, kb, vb, biasb)[0]


def _flash_fwd(qb, kb, vb, biasb):
    out, lse = _flash_forward(qb, kb, vb, biasb)
    return out, (qb, kb, vb, biasb, out, lse)  # only the output and log-sum-exp beyond the inputs


def _flash_bwd(res, dout):
    qb, kb, vb, biasb, out, lse = res
    delta = jnp.einsum("cbqnh,cbqnh->cbnq", dout.astype(jnp.float32), out.astype(jnp.float32))

    def one_kv_block(dq, kv):
        kj, vj, bj = kv

        def step(carry, qs):
            dk, dv = carry
            qi, doi, lsei, di = qs
            p = jnp.exp(_scores(qi, kj, bj) - lsei[..., None])  # recomputed probabilities
            dv = dv + jnp.einsum("bnqk,bqnh->bknh", p.astype(doi.dtype), doi, preferred_element_type=jnp.float32)
            dp = jnp.einsum("bqnh,bknh->bnqk", doi, vj, preferred_element_type=jnp.float32)
            ds = p * (dp - di[..., None])
            dk = dk + jnp.einsum("bnqk,bqnh->bknh", ds.astype(qi.dtype), qi, preferred_element_type=jnp.float32)
            dqi = jnp.einsum("bnqk,bknh->bqnh", ds.astype(kj.dtype), kj, preferred_element_type=jnp.float32)
            return (dk, dv), dqi

        zeros = jnp.zeros(kj.shape, jnp.float32)
        (dk, dv), dq_parts = jax.lax.scan(step, (zeros, zeros), (qb, dout.astype(qb.dtype), lse, delta))
        return dq + dq_parts, (dk, dv)

    dq, (dk, dv) = jax.lax.scan(one_kv_block, jnp.zeros(qb.shape, jnp.float32), (kb, vb, biasb))
    dbias = None if biasb is None else jnp.zeros_like(biasb)
    return dq.astype(qb.dtype), dk.astype(kb.dtype), dv.astype(vb.dtype), dbias


_flash.defvjp(_flash_fwd, _flash_bwd)


# ---- splash (TPU Pallas) -------------------------------------------------------------------------


def _splash_kernel(heads: int, lq: int, lk: int, bq: int, bk: int, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import (
        splash_attention_kernel as sk,
    )
    from jax.experimental.pallas.ops.tpu.splash_attention import (
        splash_attention_mask as sm,
    )

    # Built per trace, not cached: the kernel holds mask-info arrays that must not outlive the trace.
    mask = sm.MultiHeadMask([sm.FullMask((lq, lk))] * heads)
    blocks = sk.BlockSizes(
        block_q=bq,
        block_kv=bk,
        block_kv_compute=bk,
        block_q_dkv=bq,
        block_kv_dkv=bk,
        block_kv_dkv_compute=bk,
        block_q_dq=bq,
        block_kv_dq=bk,
    )
    return sk.make_splash_mha(mask, block_sizes=blocks, head_shards=1, q_seq_shards=1, interpret=interpret)


def _splash_local(q, k, v, mask, block_q, block_kv, interpret):
    """Splash on this device's items: pad lengths to the (128-multiple) blocks, padded keys as segment 0."""
    from jax.experimental.pallas.ops.tpu.splash_attention import (
        splash_attention_kernel as sk,
    )

    b, lq, n, h = q.shape
    lk = k.shape[1]
    bq, bk = min(block_q, _round_up(lq, 128)), min(block_kv, _round_up(lk, 128))
    lq_p, lk_p = _round_up(lq, bq), _round_up(lk, bk)

    def heads_first(t, to):  # (B, L, N, H) -> (B, N, L_padded, H), the kernel's layout
        return jnp.pad(t.transpose(0, 2, 1, 3), ((0, 0), (0, 0), (0, to - t.shape[1]), (0, 0)))

    qh = heads_first(q * jnp.asarray(1.0 / math.sqrt(h), q.dtype), lq_p)  # the kernel does not scale q
    kh, vh = heads_first(k, lk_p), heads_first(v, lk_p)
    kernel = _splash_kernel(n, lq_p, lk_p, bq, bk, bool(interpret))
    if mask is None and lk_p == lk:
        out = jax.vmap(kernel)(qh, kh, vh)
    else:
        valid = jnp.ones((b, lk), bool) if mask is None else mask.astype(bool)
        kv_ids = jnp.pad(valid, ((0, 0), (0, lk_p - lk))).astype(jnp.int32)
        seg = sk.SegmentIds(q=jnp.ones((b, lq_p), jnp.int32), kv=kv_ids)
        out = jax.vmap(lambda a, c, d, s: kernel(a, c, d, segment_ids=s))(qh, kh, vh, seg)
    return out[:, :, :lq].transpose(0, 2, 1, 3).astype(v.dtype)


def splash_attention(
    q, k, v, mask=None, block_q: int = DEFAULT_BLOCK_Q, block_kv: int = DEFAULT_BLOCK_KV, interpret: bool = False
):
    """Splash per device under `jax.shard_map` over the mesh axes that the batch (and heads) map to."""
    local = functools.partial(_splash_local, block_q=block_q, block_kv=block_kv, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        return local(q, k, v, mask)
    import flax.linen as nn
    from jax.sharding import PartitionSpec as P

    from emu_jax import sharding

    rules = nn.get_logical_axis_rules() or sharding.DEFAULT_RULES
    spec = nn.logical_to_mesh_axes(("activation_batch", None, "activation_heads", None), rules)
    spec = sharding._fit_spec(spec, q.shape, mesh)  # axes that do not divide B or N stay replicated
    if mask is None:
        return jax.shard_map(
            lambda a, c, d: local(a, c, d, None), mesh=mesh, in_specs=(spec,) * 3, out_specs=spec, check_vma=False
        )(q, k, v)
    return jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 3 + (P(spec[0], None),), out_specs=spec, check_vma=False)(
        q, k, v, mask
    )


def check_block_sizes(block_q: int, block_kv: int) -> None:
    """Blocks must be positive multiples of 128 (the TPU lane width splash tiles by)."""
    for name, value in (("attention_block_q", block_q), ("attention_block_kv", block_kv)):
        if not isinstance(value, (int, np.integer)) or value < 128 or value % 128:
            raise ValueError(f"{name}={value!r} must be a positive multiple of 128 (e.g. 512)")
