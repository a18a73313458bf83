"""Side-by-side CPU timing: our U-Net (video mode) vs diffusers' UNet3DConditionModel, matched config.

Both get the same widths, levels, res blocks, heads, norm groups and text width. Their temporal
layers differ in structure (diffusers: a 4-conv TemporalConvLayer per resnet, temporal blocks with
two self-attentions, a `transformer_in`; ours: one temporal conv after every 3x3 conv, temporal
blocks with self- and cross-attention), so ours runs with `temporal_kernel=5` and
`temporal_cross_attention=True`, which brings both parameter counts (printed) within 5% of each
other; the run refuses a config whose counts differ by more. Forward and forward+backward (grad
w.r.t. all params and the input) are timed in interleaved rounds (benchmarks/rounds.py: A B, B A,
...), median and min of each side and their ratios, with the machine load at start and end. PyTorch
runs with `--torch-threads` threads (default 2, this machine's cores).

    JAX_PLATFORMS=cpu python benchmarks/bench_unet.py [--size 32 --frames 8 --batch 1 --rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rounds import interleaved_rounds, load_line, param_gap  # noqa: E402

MAX_PARAM_GAP = 0.05


def build(c: int, heads: int, ctx_dim: int, groups: int):
    """(our UNetConfig, diffusers UNet3DConditionModel) of the matched config."""
    from diffusers import UNet3DConditionModel

    from emu_jax.models import UNetConfig

    cfg = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=c,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(1, 2),
        num_heads=heads,
        context_dims=(ctx_dim,),
        norm_groups=groups,
        temporal_kernel=5,
        temporal_cross_attention=True,
    )
    ref = UNet3DConditionModel(
        in_channels=4,
        out_channels=4,
        block_out_channels=(c, 2 * c),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=ctx_dim,
        attention_head_dim=heads,  # diffusers' naming issue: this is the number of heads
        norm_num_groups=groups,
    )
    return cfg, ref


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32, help="latent height = width (even)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--channels", type=int, default=64, help="model_channels / block_out_channels[0]")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5 for a reported number)")
    p.add_argument("--torch-threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.size % 2 or args.frames < 1 or args.batch < 1 or args.rounds < 1:
        p.error("--size must be even; --frames, --batch and --rounds positive")
    print(load_line("at start"), flush=True)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from emu_jax.models import UNet
    from emu_jax.models.unet import init_params

    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    c, heads, ctx_dim, ctx_len = args.channels, 4, 64, 8
    b, t, s = args.batch, args.frames, args.size
    cfg, ref = build(c, heads, ctx_dim, 32)
    params = init_params(cfg, jax.random.key(0))
    n_ours = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
    n_ref = sum(q.numel() for q in ref.parameters())
    print(f"params: ours {n_ours:,}, diffusers UNet3DConditionModel {n_ref:,} (gap {param_gap(n_ours, n_ref):.1%})")
    if param_gap(n_ours, n_ref) > MAX_PARAM_GAP:
        print(f"parameter counts differ by more than {MAX_PARAM_GAP:.0%}: not a matched config", file=sys.stderr)
        return 2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, t, s, s, 4)).astype(np.float32)
    ctx = rng.normal(size=(b, ctx_len, ctx_dim)).astype(np.float32)
    ts = np.full((b,), 500)
    model = UNet(cfg)
    xj, ctxj, tj = jnp.asarray(x), (jnp.asarray(ctx),), jnp.asarray(ts)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x, tj, ctxj))
    loss = lambda p, x: jnp.mean(model.apply({"params": p}, x, tj, ctxj) ** 2)  # noqa: E731
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))

    xt = torch.from_numpy(x.transpose(0, 4, 1, 2, 3).copy()).requires_grad_(True)  # (B, C, T, H, W)
    ctxt, tt = torch.from_numpy(ctx), torch.from_numpy(ts)

    def torch_fwd():
        with torch.no_grad():
            return ref(xt, tt, ctxt).sample

    def torch_grad():
        ref.zero_grad(set_to_none=True)
        xt.grad = None
        ref(xt, tt, ctxt).sample.pow(2).mean().backward()

    fw = interleaved_rounds({"ours": lambda: fwd(params, xj).block_until_ready(), "diffusers": torch_fwd}, args.rounds)
    gr = interleaved_rounds(
        {"ours": lambda: jax.block_until_ready(grad(params, xj)), "diffusers": torch_grad}, args.rounds
    )
    print(
        f"input (B, T, H, W, C) = {(b, t, s, s, 4)}, channels {c}/{2 * c}, heads {heads}, fp32, "
        f"torch {torch.__version__} threads {torch.get_num_threads()}, jax {jax.__version__} "
        f"{jax.devices()[0].platform} x{len(jax.devices())}, {args.rounds} interleaved rounds"
    )
    print(f"{'':18s}{'ours med / min (s)':>20s}{'diffusers med / min (s)':>25s}{'ours/diffusers med / min':>27s}")
    for name, r in (("forward", fw), ("forward+backward", gr)):
        (om, on), (dm, dn) = r["ours"], r["diffusers"]
        print(f"{name:18s}{om:11.3f} / {on:6.3f}{dm:16.3f} / {dn:6.3f}{om / dm:18.2f}x / {on / dn:5.2f}x")
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
