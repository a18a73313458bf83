"""CPU timing of the attention implementations against torch's scaled_dot_product_attention.

One row per (shape, pass, implementation): forward, or forward + backward
(grad w.r.t. q, k, v of sum(out * g)). Rounds are interleaved (A B C C B A
...) in one process so all sides share the machine's load; median and min
of `--rounds` rounds are printed with the load average before and after.
Splash is skipped here: on the CPU it only runs in Pallas interpret mode,
which is a numerics check, not a kernel.

    JAX_PLATFORMS=cpu python benchmarks/bench_attention.py [--rounds 5 --shapes 16x8x1024x40,16x8x256x64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    """'16x8x1024x40,...' -> [(B, heads, L, head_dim), ...]; ValueError names a bad entry."""
    out = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"shape {item!r} must be BxNxLxD with positive integers, e.g. 16x8x1024x40")
        out.append(tuple(int(p) for p in parts))
    return out


def interleaved(fns: dict, rounds: int) -> dict:
    """Seconds per call for each function, names in forward then reverse order on alternate rounds."""
    for f in fns.values():
        f()  # warm-up (JAX compiles here)
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return times


def bench_shape(q, k, v, g, impls, block) -> dict:
    """Callables per (pass, impl) for one shape, torch's SDPA included; inputs numpy (B, L, N, D)."""
    import jax
    import jax.numpy as jnp
    import torch

    from emu_jax.models import attention

    fns = {}
    jq, jk, jv, jg = map(jnp.asarray, (q, k, v, g))
    for impl in impls:

        def f(q, k, v, impl=impl):
            return attention.dot_product_attention(q, k, v, None, impl, block_q=block, block_kv=block)

        fwd = jax.jit(f)
        grad = jax.jit(jax.grad(lambda q, k, v, g, f=f: jnp.sum(f(q, k, v) * g), (0, 1, 2)))
        fns[("fwd", impl)] = lambda fwd=fwd: fwd(jq, jk, jv).block_until_ready()
        fns[("fwd+bwd", impl)] = lambda grad=grad: jax.block_until_ready(grad(jq, jk, jv, jg))
    tq, tk, tv, tg = (torch.from_numpy(x).transpose(1, 2).contiguous() for x in (q, k, v, g))  # (B, N, L, D)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def torch_fwd():
        with torch.no_grad():
            sdpa(tq, tk, tv)

    def torch_fwd_bwd():
        a, c, e = (t.detach().requires_grad_() for t in (tq, tk, tv))
        (sdpa(a, c, e) * tg).sum().backward()

    fns[("fwd", "torch")] = torch_fwd
    fns[("fwd+bwd", "torch")] = torch_fwd_bwd
    return fns


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--shapes",
        default="16x8x1024x40,16x4x1024x64,16x8x256x40,16x4x256x64",
        help="comma-separated BxNxLxD (batch*frames, heads, tokens, head dim)",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--impls", default="xla,blocked", help="comma-separated subset of xla,blocked")
    p.add_argument("--block", type=int, default=512, help="blocked attention's block_q = block_kv")
    p.add_argument("--torch-threads", type=int, default=2)
    args = p.parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes)
    except ValueError as e:
        p.error(str(e))
    impls = args.impls.split(",")
    bad = [i for i in impls if i not in ("xla", "blocked")]
    if bad or args.rounds < 1 or args.block < 1:
        p.error(f"--impls {bad} must be in ('xla', 'blocked'), --rounds {args.rounds} and --block {args.block} >= 1")

    import jax
    import numpy as np
    import torch

    torch.set_num_threads(args.torch_threads)
    print(
        f"load before: {os.getloadavg()}  jax {jax.__version__} on {jax.default_backend()}, "
        f"torch {torch.__version__} ({args.torch_threads} threads), blocks {args.block}"
    )
    print(f"{'B x N x L x D':>18} {'pass':>8} {'impl':>8} {'median s':>9} {'min s':>8} {'x torch':>8}")
    for b, n, length, d in shapes:
        rng = np.random.default_rng(0)
        q, k, v, g = (rng.standard_normal((b, length, n, d), np.float32) for _ in range(4))
        times = interleaved(bench_shape(q, k, v, g, impls, args.block), args.rounds)
        for pass_ in ("fwd", "fwd+bwd"):
            ref = statistics.median(times[(pass_, "torch")])
            for impl in impls + ["torch"]:
                t = times[(pass_, impl)]
                print(
                    f"{f'{b}x{n}x{length}x{d}':>18} {pass_:>8} {impl:>8} {statistics.median(t):9.4f} "
                    f"{min(t):8.4f} {statistics.median(t) / ref:8.2f}",
                    flush=True,
                )
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
