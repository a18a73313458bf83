"""Scaled dot-product attention, one implementation per backend, and the dispatcher that picks one.

All take `(B, L, N, D)` queries, `(B, K, N, D)` keys / values and an
optional `(B, K)` bool key mask (True = attend) and return `(B, L, N, D)`.
Array names end in their layout (docs/unet.md "Shape names"): B batch, L query
length, K key length, N heads, D head dim; the blocked path's tiles add I / J,
the number of query / key blocks, L / K then being one block's length:

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
    q_BLND: jax.Array,
    k_BKND: jax.Array,
    v_BKND: jax.Array,
    mask_BK: jax.Array | None = None,
    impl: str | None = "auto",
    block_q: int = DEFAULT_BLOCK_Q,
    block_kv: int = DEFAULT_BLOCK_KV,
    interpret: bool | None = None,
) -> jax.Array:
    """Softmax(q k^T / sqrt(D)) v with implementation `impl`; `interpret` (splash) defaults to CPU = True."""
    q_shape, k_shape, v_shape = q_BLND.shape, k_BKND.shape, v_BKND.shape
    # Same B and N ([::2] of (B, L, N, D)) and same D; keys and values alike.
    if len(q_shape) != 4 or k_shape != v_shape or q_shape[::2] != k_shape[::2] or q_shape[3] != k_shape[3]:
        raise ValueError(f"attention needs q (B, Lq, N, H) and k, v (B, Lk, N, H), got {q_shape}, {k_shape}, {v_shape}")
    if mask_BK is not None and mask_BK.shape != k_shape[:2]:
        raise ValueError(f"key mask has shape {mask_BK.shape}, expected (B, Lk) = {k_shape[:2]}")
    plat = platform()
    chosen = resolve(impl, plat, q_BLND.shape[1], k_BKND.shape[1], q_BLND.shape[3], q_BLND.dtype)
    if chosen == "xla":
        return _jax_attention(q_BLND, k_BKND, v_BKND, mask_BK, "xla")
    if chosen == "cudnn":
        if plat != "gpu":
            raise ValueError(f"attention_impl='cudnn' needs a GPU backend, this one is {plat!r}; use one of {IMPLS}")
        if jnp.dtype(q_BLND.dtype) not in (jnp.bfloat16, jnp.float16):
            raise ValueError(f"attention_impl='cudnn' needs float16 / bfloat16 inputs, got {q_BLND.dtype}")
        return _jax_attention(q_BLND, k_BKND, v_BKND, mask_BK, "cudnn")
    if chosen == "blocked":
        tile = CPU_TILE_BYTES if plat == "cpu" else None
        return blocked_attention(q_BLND, k_BKND, v_BKND, mask_BK, block_q, block_kv, tile)
    interpret = plat == "cpu" if interpret is None else interpret
    if plat != "tpu" and not interpret:
        raise ValueError(
            f"attention_impl='splash' needs a TPU backend (or interpret mode on the CPU), "
            f"this one is {plat!r}; use one of {IMPLS}"
        )
    return splash_attention(q_BLND, k_BKND, v_BKND, mask_BK, block_q, block_kv, interpret)


def reference_attention(q_BLND, k_BKND, v_BKND, mask_BK=None):
    """Plain einsum + softmax in float32: the ground truth for the tests."""
    f32 = lambda t: t.astype(jnp.float32)
    s_BNLK = jnp.einsum("blnd,bknd->bnlk", f32(q_BLND), f32(k_BKND)) / math.sqrt(q_BLND.shape[-1])
    if mask_BK is not None:
        s_BNLK = jnp.where(mask_BK[:, None, None, :], s_BNLK, -jnp.inf)
    return jnp.einsum("bnlk,bknd->blnd", jax.nn.softmax(s_BNLK, axis=-1), f32(v_BKND)).astype(v_BKND.dtype)


def _jax_attention(q_BLND, k_BKND, v_BKND, mask_BK, implementation):
    mask_B11K = None if mask_BK is None else mask_BK[:, None, None, :].astype(bool)
    return jax.nn.dot_product_attention(q_BLND, k_BKND, v_BKND, mask=mask_B11K, implementation=implementation)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# ---- blocked (flash-attention-2 in plain JAX) -----------------------------------------------------


def blocked_attention(
    q_BLND,
    k_BKND,
    v_BKND,
    mask_BK=None,
    block_q: int = DEFAULT_BLOCK_Q,
    block_kv: int = DEFAULT_BLOCK_KV,
    max_tile_bytes: int | None = None,
):
    """Memory-efficient attention: pads lengths to the blocks, masks padded keys, slices the output.

    `max_tile_bytes` bounds one step's fp32 score tile (items x heads x blocks): the batch is then
    processed in `lax.map` chunks of the largest divisor of B that fits (at least one item).
    """
    b, lq, n, _ = q_BLND.shape
    bq, bk = min(block_q, lq), min(block_kv, k_BKND.shape[1])
    chunk = b
    if max_tile_bytes is not None:
        per_item = n * bq * bk * 4
        chunk = max([d for d in range(1, b + 1) if b % d == 0 and d * per_item <= max_tile_bytes], default=1)
    if chunk == b:
        return _blocked_items(q_BLND, k_BKND, v_BKND, mask_BK, bq, bk)
    # (B, ...) -> (B / chunk, chunk, ...): lax.map steps over the leading axis.
    split = lambda t: None if t is None else t.reshape((b // chunk, chunk) + t.shape[1:])  # noqa: E731
    qkv = (split(q_BLND), split(k_BKND), split(v_BKND))
    if mask_BK is None:
        out = jax.lax.map(lambda a: _blocked_items(*a, None, bq, bk), qkv)
    else:
        out = jax.lax.map(lambda a: _blocked_items(*a, bq, bk), qkv + (split(mask_BK),))
    return out.reshape(q_BLND.shape)


def _blocked_items(q_BLND, k_BKND, v_BKND, mask_BK, bq: int, bk: int):
    """blocked_attention on all of `q`'s items at once, with block sizes already capped to the lengths."""
    b, lq, n, d = q_BLND.shape
    lk = k_BKND.shape[1]
    nq, nk = -(-lq // bq), -(-lk // bk)
    pad = lambda t, to: jnp.pad(t, [(0, 0), (0, to - t.shape[1])] + [(0, 0)] * (t.ndim - 2))
    # (B, I*L, ...) -> (I, B, L, ...): a leading block axis so lax.map / scan step over blocks.
    blocks = lambda t, nb: jnp.moveaxis(t.reshape((b, nb, -1) + t.shape[2:]), 1, 0)
    bias_JBK = None  # no padded keys: no bias pass over every score tile
    if mask_BK is not None or lk % bk:
        valid_BK = jnp.ones((b, lk), bool) if mask_BK is None else mask_BK.astype(bool)
        bias_JBK = blocks(jnp.where(pad(valid_BK, nk * bk), 0.0, _MASK_VALUE).astype(jnp.float32), nk)
    # q scaled once here rather than every score tile (as splash does); autodiff scales dq back.
    q_BLND = (q_BLND.astype(jnp.float32) * (1.0 / math.sqrt(d))).astype(q_BLND.dtype)
    q_BLND, k_BKND, v_BKND = pad(q_BLND, nq * bq), pad(k_BKND, nk * bk), pad(v_BKND, nk * bk)
    out_IBLND = _flash(blocks(q_BLND, nq), blocks(k_BKND, nk), blocks(v_BKND, nk), bias_JBK)
    return jnp.moveaxis(out_IBLND, 0, 1).reshape(b, nq * bq, n, d)[:, :lq]


def _scores(q_BLND, k_BKND, bias_BK):
    """fp32 logits `(B, N, bq, bk)` of one (pre-scaled) query block against one key block, padded keys
    at -1e30 (`bias_BK` None: no padded keys)."""
    s_BNLK = jnp.einsum("blnd,bknd->bnlk", q_BLND, k_BKND, preferred_element_type=jnp.float32)
    return s_BNLK if bias_BK is None else s_BNLK + bias_BK[:, None, None, :]


def _flash_forward(q_IBLND, k_JBKND, v_JBKND, bias_JBK):
    def one_q_block(q_BLND):
        b, bq, n, d = q_BLND.shape

        def step(carry, kv):
            m_BNL, l_BNL, acc_BNLD = carry
            k_BKND, v_BKND, bias_BK = kv
            s_BNLK = _scores(q_BLND, k_BKND, bias_BK)
            m_new_BNL = jnp.maximum(m_BNL, s_BNLK.max(-1))
            p_BNLK = jnp.exp(s_BNLK - m_new_BNL[..., None])
            corr_BNL = jnp.exp(m_BNL - m_new_BNL)
            acc_BNLD = acc_BNLD * corr_BNL[..., None] + jnp.einsum(
                "bnlk,bknd->bnld", p_BNLK.astype(v_BKND.dtype), v_BKND, preferred_element_type=jnp.float32
            )
            return (m_new_BNL, l_BNL * corr_BNL + p_BNLK.sum(-1), acc_BNLD), None

        init = (
            jnp.full((b, n, bq), -jnp.inf, jnp.float32),
            jnp.zeros((b, n, bq), jnp.float32),
            jnp.zeros((b, n, bq, d), jnp.float32),
        )
        (m_BNL, l_BNL, acc_BNLD), _ = jax.lax.scan(step, init, (k_JBKND, v_JBKND, bias_JBK))
        out_BLND = (acc_BNLD / l_BNL[..., None]).astype(q_BLND.dtype).transpose(0, 2, 1, 3)
        return out_BLND, m_BNL + jnp.log(l_BNL)

    return jax.lax.map(one_q_block, q_IBLND)  # out (I, B, L, N, D), log-sum-exp (I, B, N, L)


@jax.custom_vjp
def _flash(q_IBLND, k_JBKND, v_JBKND, bias_JBK):
    return _flash_forward(q_IBLND, k_JBKND, v_JBKND, bias_JBK)[0]


def _flash_fwd(q_IBLND, k_JBKND, v_JBKND, bias_JBK):
    out_IBLND, lse_IBNL = _flash_forward(q_IBLND, k_JBKND, v_JBKND, bias_JBK)
    # Residuals: only the output and log-sum-exp beyond the inputs.
    return out_IBLND, (q_IBLND, k_JBKND, v_JBKND, bias_JBK, out_IBLND, lse_IBNL)


def _flash_bwd(res, dout_IBLND):
    q_IBLND, k_JBKND, v_JBKND, bias_JBK, out_IBLND, lse_IBNL = res
    f32 = jnp.float32
    delta_IBNL = jnp.einsum("iblnd,iblnd->ibnl", dout_IBLND.astype(f32), out_IBLND.astype(f32))

    def one_kv_block(dq_IBLND, kv):
        k_BKND, v_BKND, bias_BK = kv

        def step(carry, qs):
            dk_BKND, dv_BKND = carry
            q_BLND, dout_BLND, lse_BNL, delta_BNL = qs
            p_BNLK = jnp.exp(_scores(q_BLND, k_BKND, bias_BK) - lse_BNL[..., None])  # recomputed probabilities
            dv_BKND = dv_BKND + jnp.einsum(
                "bnlk,blnd->bknd", p_BNLK.astype(dout_BLND.dtype), dout_BLND, preferred_element_type=f32
            )
            dp_BNLK = jnp.einsum("blnd,bknd->bnlk", dout_BLND, v_BKND, preferred_element_type=f32)
            ds_BNLK = p_BNLK * (dp_BNLK - delta_BNL[..., None])
            dk_BKND = dk_BKND + jnp.einsum(
                "bnlk,blnd->bknd", ds_BNLK.astype(q_BLND.dtype), q_BLND, preferred_element_type=f32
            )
            dq_BLND = jnp.einsum("bnlk,bknd->blnd", ds_BNLK.astype(k_BKND.dtype), k_BKND, preferred_element_type=f32)
            return (dk_BKND, dv_BKND), dq_BLND

        zeros = jnp.zeros(k_BKND.shape, f32)
        qs = (q_IBLND, dout_IBLND.astype(q_IBLND.dtype), lse_IBNL, delta_IBNL)
        (dk_BKND, dv_BKND), dq_parts_IBLND = jax.lax.scan(step, (zeros, zeros), qs)
        return dq_IBLND + dq_parts_IBLND, (dk_BKND, dv_BKND)

    kvs = (k_JBKND, v_JBKND, bias_JBK)
    dq_IBLND, (dk_JBKND, dv_JBKND) = jax.lax.scan(one_kv_block, jnp.zeros(q_IBLND.shape, f32), kvs)
    dbias = None if bias_JBK is None else jnp.zeros_like(bias_JBK)
    return dq_IBLND.astype(q_IBLND.dtype), dk_JBKND.astype(k_JBKND.dtype), dv_JBKND.astype(v_JBKND.dtype), dbias


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


def _splash_local(q_BLND, k_BKND, v_BKND, mask_BK, block_q, block_kv, interpret):
    """Splash on this device's items: pad lengths to the (128-multiple) blocks, padded keys as segment 0."""
    from jax.experimental.pallas.ops.tpu.splash_attention import (
        splash_attention_kernel as sk,
    )

    b, lq, n, d = q_BLND.shape
    lk = k_BKND.shape[1]
    bq, bk = min(block_q, _round_up(lq, 128)), min(block_kv, _round_up(lk, 128))
    lq_p, lk_p = _round_up(lq, bq), _round_up(lk, bk)

    def heads_first(t, to):  # (B, L, N, D) -> (B, N, L_padded, D), the kernel's layout
        return jnp.pad(t.transpose(0, 2, 1, 3), ((0, 0), (0, 0), (0, to - t.shape[1]), (0, 0)))

    q_BNLD = heads_first(q_BLND * jnp.asarray(1.0 / math.sqrt(d), q_BLND.dtype), lq_p)  # the kernel does not scale q
    k_BNKD, v_BNKD = heads_first(k_BKND, lk_p), heads_first(v_BKND, lk_p)
    kernel = _splash_kernel(n, lq_p, lk_p, bq, bk, bool(interpret))
    if mask_BK is None and lk_p == lk:
        out_BNLD = jax.vmap(kernel)(q_BNLD, k_BNKD, v_BNKD)
    else:
        valid_BK = jnp.ones((b, lk), bool) if mask_BK is None else mask_BK.astype(bool)
        kv_ids_BK = jnp.pad(valid_BK, ((0, 0), (0, lk_p - lk))).astype(jnp.int32)
        seg = sk.SegmentIds(q=jnp.ones((b, lq_p), jnp.int32), kv=kv_ids_BK)
        out_BNLD = jax.vmap(lambda a, c, d, s: kernel(a, c, d, segment_ids=s))(q_BNLD, k_BNKD, v_BNKD, seg)
    return out_BNLD[:, :, :lq].transpose(0, 2, 1, 3).astype(v_BKND.dtype)


def splash_attention(
    q_BLND,
    k_BKND,
    v_BKND,
    mask_BK=None,
    block_q: int = DEFAULT_BLOCK_Q,
    block_kv: int = DEFAULT_BLOCK_KV,
    interpret: bool = False,
):
    """Splash per device under `jax.shard_map` over the mesh axes that the batch (and heads) map to."""
    local = functools.partial(_splash_local, block_q=block_q, block_kv=block_kv, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        return local(q_BLND, k_BKND, v_BKND, mask_BK)
    import flax.linen as nn
    from jax.sharding import PartitionSpec as P

    from emu_jax import sharding

    rules = nn.get_logical_axis_rules() or sharding.DEFAULT_RULES
    spec = nn.logical_to_mesh_axes(("activation_batch", None, "activation_heads", None), rules)
    spec = sharding._fit_spec(spec, q_BLND.shape, mesh)  # axes that do not divide B or N stay replicated
    qkv = (q_BLND, k_BKND, v_BKND)
    if mask_BK is None:
        return jax.shard_map(
            lambda a, c, d: local(a, c, d, None), mesh=mesh, in_specs=(spec,) * 3, out_specs=spec, check_vma=False
        )(*qkv)
    return jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 3 + (P(spec[0], None),), out_specs=spec, check_vma=False)(
        *qkv, mask_BK
    )


def check_block_sizes(block_q: int, block_kv: int) -> None:
    """Blocks must be positive multiples of 128 (the TPU lane width splash tiles by)."""
    for name, value in (("attention_block_q", block_q), ("attention_block_kv", block_kv)):
        if not isinstance(value, (int, np.integer)) or value < 128 or value % 128:
            raise ValueError(f"{name}={value!r} must be a positive multiple of 128 (e.g. 512)")
