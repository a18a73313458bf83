"""Compile attention for a TPU slice from this CPU host (libtpu) and print per-chip temporaries per implementation.

Cases: the attention core's forward + backward at a 64x64 latent (4096 tokens,
`--items` frames per chip, `--heads` heads of 64, bf16); the VAE mid-block's
single 512-d head at 4096 tokens (forward only, as the frozen VAE runs); and a
small U-Net (32x32 latents, 1024 tokens) forward + backward. Splash's FLOPs are
not in `cost_analysis()`, so only memory is compared.

    JAX_PLATFORMS=cpu python benchmarks/aot_attention.py [--topology v5p:2x2x1 --items 2 --heads 8]
"""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", default="v5p:2x2x1")
    p.add_argument("--items", type=int, default=2, help="frames per chip in the attention-core case")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--impls", default="xla,splash,blocked")
    p.add_argument("--cases", default="core,vae,unet", help="comma-separated subset of core,vae,unet")
    args = p.parse_args(argv)
    cases = args.cases.split(",")
    if any(c not in ("core", "vae", "unet") for c in cases):
        p.error(f"--cases {cases} must be a subset of core,vae,unet")
    impls = args.impls.split(",")
    if any(i not in ("auto", "xla", "splash", "blocked") for i in impls) or args.items < 1 or args.heads < 1:
        p.error(f"--impls {impls} must be a subset of auto,xla,splash,blocked; --items / --heads positive")

    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from emu_jax import sharding
    from emu_jax.models import UNet, UNetConfig, attention
    from emu_jax.models.unet import abstract_params
    from emu_jax.training import tpu_topology

    devices = tpu_topology.topology_devices(tpu_topology.resolve_topology(args.topology))
    mesh = sharding.make_mesh({"data": -1}, devices)
    chips = len(devices)

    def gib(n):
        return f"{n / 2**30:.3f} GiB"

    def abstract(shape, dtype, batched=True):
        spec = sharding.batch_sharding(mesh, len(shape)) if batched else sharding.replicated(mesh)
        return jax.ShapeDtypeStruct(shape, dtype, sharding=spec)

    def report(name, fn, *specs):
        with sharding.use_mesh(mesh):
            compiled = jax.jit(fn).lower(*specs).compile()
        m = compiled.memory_analysis()
        print(f"{name:58s} temp {gib(m.temp_size_in_bytes)}  args {gib(m.argument_size_in_bytes)}", flush=True)

    q = abstract((chips * args.items, 4096, args.heads, 64), jnp.bfloat16)
    for impl in impls if "core" in cases else ():

        def grad(q, k, v, impl=impl):
            def f(q, k, v):
                return jnp.sum(attention.dot_product_attention(q, k, v, None, impl).astype(jnp.float32))

            return jax.grad(f, (0, 1, 2))(q, k, v)

        report(f"core fwd+bwd {args.items}x{args.heads}x4096x64 bf16/chip [{impl}]", grad, q, q, q)
    vq = abstract((chips, 4096, 1, 512), jnp.bfloat16)
    for impl in impls if "vae" in cases else ():
        report(
            f"VAE mid attention fwd 1x1x4096x512 bf16/chip [{impl}]",
            lambda q, k, v, impl=impl: attention.dot_product_attention(q, k, v, None, impl),
            vq,
            vq,
            vq,
        )
    cfg = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=64,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(1,),
        num_heads=None,
        head_dim=64,
        context_dims=(64,),
        norm_groups=32,
        dtype="bfloat16",
    )
    params = nn.meta.unbox(abstract_params(cfg))
    pspec = jax.tree.map(lambda a: abstract(a.shape, a.dtype, False), params)
    x = abstract((chips, 2, 32, 32, 4), jnp.float32)
    t = abstract((chips,), jnp.int32)
    ctx = abstract((chips, 77, 64), jnp.float32)
    for impl in impls if "unet" in cases else ():
        c = cfg.replace(attention_impl=impl)

        def loss(p, x, t, ctx, c=c):
            return jnp.mean(UNet(c).apply({"params": p}, x, t, (ctx,)).astype(jnp.float32) ** 2)

        report(f"U-Net 64ch 2 frames 32x32 fwd+bwd bf16/chip [{impl}]", jax.grad(loss), pspec, x, t, ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
