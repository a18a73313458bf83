"""Attention implementations (emu_jax/models/attention.py) against plain einsum + softmax attention:
outputs and q/k/v gradients, key masks, odd lengths, head dims, bf16; the "auto" table; errors; the
U-Net with "blocked" equal to "xla"; splash under shard_map; splash compiled for a v5p slice (libtpu)."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import sharding
from emu_jax.models import UNet, UNetConfig, attention
from emu_jax.models.unet import init_params

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def make_inputs(b, lq, lk, n, h, masked, dtype, seed=0):
    ks = jax.random.split(jax.random.key(seed), 4)
    q, k, v = (jax.random.normal(kk, (b, length, n, h)).astype(dtype) for kk, length in zip(ks[:3], (lq, lk, lk)))
    g = jax.random.normal(ks[3], (b, lq, n, h))
    # Item i keeps a different number of keys, so a mask applied to the wrong item shows.
    mask = (jnp.arange(lk)[None] < jnp.array([lk - 3 - 11 * i for i in range(b)])[:, None]) if masked else None
    return q, k, v, g, mask


def out_and_grads(fn, q, k, v, g):
    """One compile: the output and the gradients of sum(out * g) w.r.t. q, k, v."""

    def loss(q, k, v):
        out = fn(q, k, v)
        return jnp.sum(out.astype(jnp.float32) * g), out

    grads, out = jax.jit(jax.grad(loss, (0, 1, 2), has_aux=True))(q, k, v)
    return out, grads


def check_against_reference(impl, b, lq, lk, n, h, masked, dtype, tol, blocks=128):
    q, k, v, g, mask = make_inputs(b, lq, lk, n, h, masked, dtype)
    fn = lambda q, k, v: attention.dot_product_attention(q, k, v, mask, impl, blocks, blocks)
    out, grads = out_and_grads(fn, q, k, v, g)
    # The reference sees the same (rounded) inputs in float32.
    f32 = [x.astype(jnp.float32) for x in (q, k, v)]
    ref, ref_grads = out_and_grads(lambda q, k, v: attention.reference_attention(q, k, v, mask), *f32, g)
    assert out.dtype == dtype and out.shape == ref.shape
    assert rel_err(out, ref) <= tol, f"{impl} output"
    for name, a, r in zip("qkv", grads, ref_grads):
        assert rel_err(a, r) <= tol, f"{impl} d{name}"


CASES = [  # (b, lq, lk, heads, head_dim, masked): odd lengths, several key blocks, cross lengths
    (2, 129, 129, 2, 8, False),
    (2, 77, 129, 2, 40, True),
    (1, 300, 77, 1, 64, True),
]


@pytest.mark.parametrize("case", CASES)
def test_blocked_matches_reference_fp32(case):
    check_against_reference("blocked", *case, jnp.float32, 1e-5)


def test_xla_matches_reference_fp32():
    check_against_reference("xla", *CASES[1], jnp.float32, 1e-5)


@pytest.mark.parametrize("impl", ["xla", "blocked"])
def test_matches_reference_bf16(impl):
    check_against_reference(impl, 2, 129, 77, 2, 40, True, jnp.bfloat16, 2e-2)


@pytest.mark.parametrize(
    "case, dtype, tol",
    [((2, 77, 129, 2, 40, True), jnp.float32, 1e-5), ((1, 129, 33, 1, 64, False), jnp.bfloat16, 2e-2)],
)
def test_splash_interpret_matches_reference(case, dtype, tol):
    """Splash in Pallas interpret mode (picked automatically on the CPU); keys padded to 128 via segment ids."""
    check_against_reference("splash", *case, dtype, tol)


def test_blocked_uses_several_blocks_and_any_block_size():
    """Blocks smaller than the sequence (3 x 2 blocks with padding) give the same result as one block."""
    q, k, v, _, mask = make_inputs(2, 300, 200, 2, 16, True, jnp.float32, seed=1)
    one = attention.blocked_attention(q, k, v, mask, 512, 512)
    many = attention.blocked_attention(q, k, v, mask, 128, 128)
    assert rel_err(many, one) <= 1e-6
    assert rel_err(one, attention.reference_attention(q, k, v, mask)) <= 1e-5


@pytest.mark.parametrize(
    "plat, lq, lk, dtype, expected",
    [
        ("tpu", 4096, 4096, jnp.bfloat16, "splash"),  # 64x64 latent self-attention
        ("tpu", 1024, 1024, jnp.float32, "splash"),  # 32x32 is the threshold
        ("tpu", 4096, 77, jnp.bfloat16, "xla"),  # text cross-attention
        ("tpu", 8, 8, jnp.bfloat16, "xla"),  # temporal attention over 8 frames
        ("gpu", 4096, 4096, jnp.bfloat16, "cudnn"),
        ("gpu", 4096, 4096, jnp.float32, "xla"),  # cuDNN takes fp16 / bf16 only
        ("cpu", 4096, 4096, jnp.float32, "blocked"),  # by measurement (benchmarks/bench_attention.py)
        ("cpu", 1024, 77, jnp.float32, "xla"),
        ("cpu", 256, 256, jnp.float32, "blocked"),  # 16x16 latents, since blocked chunks the batch
        ("cpu", 128, 128, jnp.float32, "xla"),
    ],
)
def test_auto_resolves_per_backend(plat, lq, lk, dtype, expected):
    assert attention.resolve("auto", plat, lq, lk, 64, dtype) == expected
    assert attention.resolve(None, plat, lq, lk, 64, dtype) == "xla"  # saved configs: jax's default path
    assert attention.resolve("blocked", plat, lq, lk, 64, dtype) == "blocked"


def test_gpu_auto_needs_cudnn_head_dims():
    assert attention.resolve("auto", "gpu", 4096, 4096, 40, jnp.bfloat16) == "cudnn"
    assert attention.resolve("auto", "gpu", 4096, 4096, 36, jnp.bfloat16) == "xla"  # not a multiple of 8
    assert attention.resolve("auto", "gpu", 4096, 4096, 512, jnp.bfloat16) == "xla"  # VAE's single 512-d head


def test_errors_name_the_bad_value():
    q = jnp.zeros((1, 4, 1, 8), jnp.bfloat16)
    with pytest.raises(ValueError, match="'cudnn' needs a GPU backend, this one is 'cpu'"):
        attention.dot_product_attention(q, q, q, None, "cudnn")
    with pytest.raises(ValueError, match="'flash' not in"):
        attention.dot_product_attention(q, q, q, None, "flash")
    with pytest.raises(ValueError, match="splash.*needs a TPU"):
        attention.dot_product_attention(q, q, q, None, "splash", interpret=False)
    with pytest.raises(ValueError, match=r"key mask has shape \(1, 3\)"):
        attention.dot_product_attention(q, q, q, jnp.ones((1, 3), bool), "xla")
    with pytest.raises(ValueError, match=r"attention_impl='flash' not in \('auto', 'xla', 'cudnn', 'splash'"):
        UNetConfig(attention_impl="flash")
    with pytest.raises(ValueError, match="attention_block_kv=100 must be a positive multiple of 128"):
        UNetConfig(attention_block_kv=100)


def test_old_configs_load_and_default_is_auto():
    cfg = UNetConfig()
    assert cfg.attention_impl == "auto" and (cfg.attention_block_q, cfg.attention_block_kv) == (512, 512)
    d = cfg.to_dict()
    for key in ("attention_block_q", "attention_block_kv"):
        d.pop(key)
    assert UNetConfig.from_dict({**d, "attention_impl": None}).attention_impl is None


@pytest.fixture(scope="module")
def micro_unet():
    """One-level tiny U-Net at 8x8 latents, 2 frames, a padded 5-token text context."""
    cfg = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=16,
        channel_mult=(1,),
        num_res_blocks=1,
        attention_resolutions=(1,),
        num_heads=None,
        head_dim=8,
        context_dims=(16,),
        norm_groups=8,
        attention_block_q=128,
        attention_block_kv=128,
    )
    params = jax.tree.map(lambda p: p + 0.01, init_params(cfg, jax.random.key(0)))  # temporal path non-zero
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 2, 8, 8, 4)), jnp.float32)
    ctx = (jnp.asarray(rng.normal(size=(1, 5, 16)), jnp.float32),)
    masks = (jnp.array([[True, True, True, False, False]]),)
    return cfg, params, x, jnp.array([17]), ctx, masks


def unet_out_and_grad(cfg, params, x, t, ctx, masks):
    def loss(p):
        out = UNet(cfg).apply({"params": p}, x, t, ctx, context_masks=masks)
        return jnp.mean(out**2), out

    return jax.grad(loss, has_aux=True)(params)


def test_every_unet_attention_goes_through_the_chosen_impl(micro_unet, monkeypatch):
    """Spatial self-attention (64 tokens), text cross-attention (5 keys), temporal attention (2 frames)."""
    cfg, params, x, t, ctx, masks = micro_unet
    seen = []
    real = attention.blocked_attention
    monkeypatch.setattr(
        attention, "blocked_attention", lambda q, k, *a: seen.append((q.shape[1], k.shape[1])) or real(q, k, *a)
    )
    jax.eval_shape(
        lambda p: UNet(cfg.replace(attention_impl="blocked")).apply({"params": p}, x, t, ctx, context_masks=masks),
        params,
    )
    assert {(64, 64), (128, 5), (2, 2)} <= set(seen), seen  # cross-attention folds the 2 frames into Lq


def test_unet_blocked_equals_xla(micro_unet):
    """Forward only: the gradients are checked per attention above, and a U-Net backward compile costs minutes."""
    cfg, params, x, t, ctx, masks = micro_unet

    def run(impl):
        model = UNet(cfg.replace(attention_impl=impl))
        return jax.jit(lambda p: model.apply({"params": p}, x, t, ctx, context_masks=masks))(params)

    out = {impl: run(impl) for impl in ("xla", "blocked")}
    assert rel_err(out["blocked"], out["xla"]) <= 1e-5


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 simulated devices (XLA_FLAGS host device count)")
def test_splash_under_shard_map_over_batch_and_heads():
    """On a (data 2, tensor 2) mesh splash runs per device on its items and heads; the result is the same."""
    q, k, v, _, mask = make_inputs(2, 129, 77, 2, 8, True, jnp.float32)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 1, "tensor": 2}, jax.devices()[:4])
    with sharding.use_mesh(mesh):
        fn = jax.jit(lambda q, k, v: attention.dot_product_attention(q, k, v, mask, "splash", 128, 128))
        text = fn.lower(q, k, v).as_text()
        out = fn(q, k, v)
    assert "shard_map" in text or "sdy.manual_computation" in text
    assert rel_err(out, attention.reference_attention(q, k, v, mask)) <= 1e-5


@pytest.mark.slow  # ~3 min on the loaded 2-core host (libtpu compiles the U-Net's backward)
@pytest.mark.skipif(not HAS_LIBTPU, reason="needs libtpu (pip install -e .[tpu]) to compile for TPU")
def test_unet_with_splash_compiles_for_v5p(micro_unet):
    """The tiny U-Net's forward + backward with splash lowers and compiles for a v5p:2x2x1 slice from here."""
    from emu_jax.training import tpu_topology

    cfg, params, x, _, ctx, masks = micro_unet
    devices = tpu_topology.topology_devices(tpu_topology.resolve_topology("v5p:2x2x1"))
    mesh = sharding.make_mesh({"data": -1}, devices)

    def spec(a, batch=True):  # abstract input; batched ones hold one item per chip
        shape = ((4,) + a.shape[1:]) if batch else a.shape
        return jax.ShapeDtypeStruct(
            shape, a.dtype, sharding=sharding.batch_sharding(mesh, a.ndim) if batch else sharding.replicated(mesh)
        )

    args = (
        jax.tree.map(lambda p: spec(p, False), params),
        spec(x),
        spec(jnp.zeros(1, jnp.int32)),
        (spec(ctx[0]),),
        (spec(masks[0]),),
    )
    with sharding.use_mesh(mesh):
        lowered = jax.jit(lambda *a: unet_out_and_grad(cfg.replace(attention_impl="splash"), *a)).lower(*args)
    assert "tpu_custom_call" in lowered.as_text()  # the Pallas kernel, not a fallback
    assert lowered.compile().memory_analysis().temp_size_in_bytes > 0


@pytest.mark.slow  # ~5.5 s: compiles the blocked kernel at several batch sizes
def test_blocked_tile_budget_maps_the_batch_in_chunks():
    """A tile budget below the whole batch's tile processes items in chunks (3 of 2 here, then 1 by 1),
    masks included, with the same result as all items at once."""
    q, k, v, _, mask = make_inputs(6, 200, 130, 2, 16, True, jnp.float32, seed=2)
    whole = attention.blocked_attention(q, k, v, mask, 128, 128)
    per_item = 2 * 128 * 128 * 4
    for budget in (2 * per_item, per_item, 1):
        chunked = attention.blocked_attention(q, k, v, mask, 128, 128, max_tile_bytes=budget)
        assert rel_err(chunked, whole) <= 1e-6
    assert rel_err(whole, attention.reference_attention(q, k, v, mask)) <= 1e-5
    g = jax.grad(lambda q: jnp.sum(attention.blocked_attention(q, k, v, mask, 128, 128, max_tile_bytes=1) ** 2))(q)
    g_ref = jax.grad(lambda q: jnp.sum(attention.reference_attention(q, k, v, mask) ** 2))(q)
    assert rel_err(g, g_ref) <= 1e-5
