"""Side-by-side CPU timing: our U-Net (video mode) vs diffusers' UNet3DConditionModel, matched config.

Both models get the same widths, levels, res blocks, heads and text width;
each has a temporal conv / temporal attention after its spatial layers (the
layouts differ in detail, so parameter counts are printed too). Reports
forward and forward+backward (grad w.r.t. all params) best-of-N seconds
(runs interleaved) and the ratio ours / diffusers. PyTorch runs with `--torch-threads` threads (default 2).

    JAX_PLATFORMS=cpu python benchmarks/bench_unet.py [--size 32 --frames 8 --batch 1]
"""

from __future__ import annotations

import argparse
import time


def timed_pair(ours, ref, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` seconds for two functions, interleaved run by run.

    On a shared machine other processes steal cores at random; interleaving
    exposes both sides to the same load and the minimum filters out stalls.
    """
    ours(), ref()  # warm-up (JAX compiles here)
    a, b = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref()
        b.append(time.perf_counter() - t0)
    return min(a), min(b)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32, help="latent height = width (divisible by 2)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--channels", type=int, default=64, help="model_channels / block_out_channels[0]")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs per side; best is reported")
    p.add_argument("--torch-threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.size % 2 or args.frames < 1 or args.batch < 1:
        p.error("--size must be even, --frames and --batch positive")

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from diffusers import UNet3DConditionModel

    from emu_jax.models import UNet, UNetConfig
    from emu_jax.models.unet import init_params

    torch.set_num_threads(args.torch_threads)
    c, heads, ctx_dim, ctx_len = args.channels, 4, 64, 8
    b, t, s = args.batch, args.frames, args.size
    cfg = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=c,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(1, 2),
        num_heads=heads,
        context_dims=(ctx_dim,),
        norm_groups=32,
    )
    ref = UNet3DConditionModel(
        in_channels=4,
        out_channels=4,
        block_out_channels=(c, 2 * c),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=ctx_dim,
        attention_head_dim=(c // heads),
        norm_num_groups=32,
    )

    params = init_params(cfg, jax.random.key(0))
    n_ours = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
    n_ref = sum(p.numel() for p in ref.parameters())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, t, s, s, 4)).astype(np.float32)
    ctx = rng.normal(size=(b, ctx_len, ctx_dim)).astype(np.float32)
    ts = np.full((b,), 500)

    model = UNet(cfg)
    xj, ctxj, tj = jnp.asarray(x), (jnp.asarray(ctx),), jnp.asarray(ts)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x, tj, ctxj))
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(model.apply({"params": p}, x, tj, ctxj) ** 2)))

    xt = torch.from_numpy(x.transpose(0, 4, 1, 2, 3).copy())  # (B, C, T, H, W)
    ctxt, tt = torch.from_numpy(ctx), torch.from_numpy(ts)

    def torch_fwd():
        with torch.no_grad():
            _ = ref(xt, tt, ctxt).sample

    def torch_bwd():
        ref.zero_grad(set_to_none=True)
        ref(xt, tt, ctxt).sample.pow(2).mean().backward()

    jax_fwd, pt_fwd = timed_pair(lambda: fwd(params, xj).block_until_ready(), torch_fwd, args.repeats)
    jax_bwd, pt_bwd = timed_pair(lambda: jax.block_until_ready(grad(params, xj)), torch_bwd, args.repeats)

    # The largest self-attention (full-resolution level, all frames) alone: where XLA:CPU loses most.
    q_np = rng.normal(size=(b * t, s * s, heads, c // heads)).astype(np.float32)
    qj = jnp.asarray(q_np)
    att_f = jax.jit(lambda q: jax.nn.dot_product_attention(q, q, q))
    att_g = jax.jit(jax.grad(lambda q: jnp.sum(jax.nn.dot_product_attention(q, q, q) ** 2)))
    qt = torch.from_numpy(q_np.transpose(0, 2, 1, 3).copy()).requires_grad_(True)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def pt_att_f():
        with torch.no_grad():
            sdpa(qt, qt, qt)

    def pt_att_g():
        qt.grad = None
        sdpa(qt, qt, qt).pow(2).sum().backward()

    att_fwd = timed_pair(lambda: att_f(qj).block_until_ready(), pt_att_f, args.repeats)
    att_bwd = timed_pair(lambda: att_g(qj).block_until_ready(), pt_att_g, args.repeats)

    print(
        f"input (B, T, H, W, C) = {(b, t, s, s, 4)}, channels {c}/{2 * c}, heads {heads}, "
        f"torch threads {args.torch_threads}, jax devices {jax.devices()[0].platform} x{len(jax.devices())}"
    )
    print(
        f"attention rows: one self-attention core on {(b * t, s * s, heads, c // heads)} (B*T, HW, N, H), "
        "jax.nn.dot_product_attention vs torch SDPA"
    )
    print(f"params: ours {n_ours / 1e6:.2f}M, diffusers UNet3DConditionModel {n_ref / 1e6:.2f}M")
    print(f"{'':22s}{'ours (s)':>10s}{'diffusers (s)':>15s}{'ours/diffusers':>16s}")
    rows = (
        ("forward", jax_fwd, pt_fwd),
        ("forward+backward", jax_bwd, pt_bwd),
        ("1 attention fwd", *att_fwd),
        ("1 attention fwd+bwd", *att_bwd),
    )
    for name, a, r in rows:
        print(f"{name:22s}{a:10.3f}{r:15.3f}{a / r:16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
