"""Where the U-Net's CPU time goes: each building block alone, ours vs its diffusers counterpart.

Times forward and forward+backward (grads w.r.t. input and params) of one resnet (with its
temporal convs), one spatial transformer, one temporal attention block, and GroupNorm / 3x3 conv
/ temporal conv alone, at bench_unet.py's matched config (level 0: B*T = 8 frames of 32x32x64),
in interleaved rounds (benchmarks/rounds.py), torch with 2 threads.

    JAX_PLATFORMS=cpu python benchmarks/profile_unet.py [--rounds 5] [--size 32] [--channels 64]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_unet import build  # noqa: E402
from rounds import interleaved_rounds, load_line  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--only", default="", help="comma-separated block names to run (default all)")
    args = p.parse_args(argv)
    print(load_line("at start"), flush=True)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from diffusers.models.resnet import ResnetBlock2D, TemporalConvLayer
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    from emu_jax.models.layers import Conv, GroupNorm
    from emu_jax.models.temporal import TemporalAttention, TemporalConv
    from emu_jax.models.unet_blocks import ResBlock, SpatialTransformer

    torch.set_num_threads(2)
    torch.manual_seed(0)
    c, heads, t, s = args.channels, 4, args.frames, args.size
    cfg, _ = build(c, heads, 64, 32)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(t, s, s, c)).astype(np.float32)
    ctx = rng.normal(size=(1, 8, 64)).astype(np.float32)
    temb = rng.normal(size=(t, cfg.time_embed_dim)).astype(np.float32)
    xj, ctxj, tembj = jnp.asarray(x), jnp.asarray(ctx), jnp.asarray(temb)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    ctxt, tembt = torch.from_numpy(ctx), torch.from_numpy(temb)

    class TorchRes(torch.nn.Module):  # what diffusers' 3D blocks run per resnet
        def __init__(self):
            super().__init__()
            self.res = ResnetBlock2D(in_channels=c, out_channels=c, temb_channels=cfg.time_embed_dim, groups=32)
            self.temp = TemporalConvLayer(c, c, norm_num_groups=32)

        def forward(self, h, e):
            return self.temp(self.res(h, e), num_frames=t)

    torch_blocks = {
        "resnet + temporal convs": (TorchRes(), lambda m: m(xt, tembt)),
        "spatial transformer": (
            Transformer2DModel(heads, c // heads, in_channels=c, cross_attention_dim=64, norm_num_groups=32),
            lambda m: m(xt, encoder_hidden_states=ctxt.expand(t, -1, -1)).sample,
        ),
        "temporal attention": (
            TransformerTemporalModel(c // heads, heads, in_channels=c, cross_attention_dim=64, norm_num_groups=32),
            lambda m: m(xt, num_frames=t).sample,
        ),
        "groupnorm": (torch.nn.GroupNorm(32, c), lambda m: m(xt)),
        "conv 3x3": (torch.nn.Conv2d(c, c, 3, padding=1), lambda m: m(xt)),
        "temporal conv": (TemporalConvLayer(c, c, norm_num_groups=32), lambda m: m(xt, num_frames=t)),
    }
    jax_blocks = {
        "resnet + temporal convs": (ResBlock(cfg, c), lambda m, p: m.apply({"params": p}, xj, tembj, t, False)),
        "spatial transformer": (
            SpatialTransformer(cfg, heads, 1),
            lambda m, p: m.apply({"params": p}, xj, (ctxj,), (None,)),
        ),
        "temporal attention": (
            TemporalAttention(t, heads, 1, 32, cfg.attention_impl, cross_attention=True),
            lambda m, p: m.apply({"params": p}, xj, ctxj),
        ),
        "groupnorm": (GroupNorm(32), lambda m, p: m.apply({"params": p}, xj)),
        "conv 3x3": (Conv(c, (3, 3)), lambda m, p: m.apply({"params": p}, xj)),
        "temporal conv": (TemporalConv(t, cfg.temporal_kernel), lambda m, p: m.apply({"params": p}, xj)),
    }
    only = [n for n in args.only.split(",") if n]
    print(f"{'block':26s}{'fwd ours / torch (ms)':>24s}{'ratio':>7s}{'fwd+bwd ours / torch (ms)':>28s}{'ratio':>7s}")
    for name, (mod, call) in jax_blocks.items():
        if only and name not in only:
            continue
        tmod, tcall = torch_blocks[name]
        init_args = {
            "resnet + temporal convs": (xj, tembj, t, False),
            "spatial transformer": (xj, (ctxj,), (None,)),
            "temporal attention": (xj, ctxj),
        }.get(name, (xj,))
        params = jax.jit(lambda k, m=mod, a=init_args: m.init(k, *a))(jax.random.key(0))["params"]
        fwd = jax.jit(lambda p, x, m=mod, f=call: f(m, p))
        grad = jax.jit(jax.grad(lambda p, m=mod, f=call: jnp.mean(f(m, p) ** 2)))

        def tf(m=tmod, f=tcall):
            with torch.no_grad():
                return f(m)

        def tg(m=tmod, f=tcall):
            m.zero_grad(set_to_none=True)
            xt.grad = None
            f(m).pow(2).mean().backward()

        of_ = lambda f=fwd, q=params: f(q, xj).block_until_ready()  # noqa: E731
        og_ = lambda g=grad, q=params: jax.block_until_ready(g(q))  # noqa: E731
        rf = interleaved_rounds({"o": of_, "t": tf}, args.rounds)
        rg = interleaved_rounds({"o": og_, "t": tg}, args.rounds)
        (of, _), (tf_, _) = rf["o"], rf["t"]
        (og, _), (tg_, _) = rg["o"], rg["t"]
        print(
            f"{name:26s}{of * 1e3:11.1f} / {tf_ * 1e3:8.1f}{of / tf_:7.2f}"
            f"{og * 1e3:15.1f} / {tg_ * 1e3:8.1f}{og / tg_:7.2f}",
            flush=True,
        )
    print("medians of interleaved rounds; " + load_line("at end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
