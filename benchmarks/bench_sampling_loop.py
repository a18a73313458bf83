"""Sampling loop cost: one jitted `lax.scan` over all steps vs a Python loop of a jitted step.

Same tiny conv denoiser, same DDIM steps, measured side by side in one run; prints
median wall times after a warm-up and their ratio. Not a test (pytest does not collect it).

    JAX_PLATFORMS=cpu python benchmarks/bench_sampling_loop.py [--steps 50] [--size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from emu_jax.diffusion import samplers, schedules


def init_denoiser(key: jax.Array, channels: int = 4, width: int = 32) -> dict:
    """Params of a 3-conv denoiser with an additive timestep embedding (stands in for a U-Net)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    conv = lambda k, cin, cout: jax.random.normal(k, (3, 3, cin, cout)) / (9 * cin) ** 0.5  # noqa: E731
    return {
        "c1": conv(k1, channels, width),
        "c2": conv(k2, width, width),
        "c3": conv(k3, width, channels),
        "temb": jax.random.normal(k4, (16, width)) / 4,
    }


def denoiser(params: dict, x_BHWC: jax.Array, t_B: jax.Array) -> jax.Array:
    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    freqs = jnp.exp(-jnp.arange(8) * jnp.log(1000.0) / 8)
    ang = t_B[:, None].astype(jnp.float32) * freqs
    temb = jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1) @ params["temb"]
    h = jax.nn.silu(conv(x_BHWC, params["c1"]) + temb[:, None, None, :])
    h = jax.nn.silu(conv(h, params["c2"]))
    return conv(h, params["c3"])


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--size", type=int, default=32, help="latent height = width (default 32)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant; the median is shown")
    args = parser.parse_args()

    sched = schedules.make_schedule("scaled_linear", zero_terminal_snr=True)
    kw = dict(method="ddim", num_steps=args.steps, prediction="v", spacing="trailing")
    params = init_denoiser(jax.random.key(0))
    x_T = jax.random.normal(jax.random.key(1), (args.batch, args.size, args.size, 4))

    scan_fn = jax.jit(lambda p, x: samplers.sample(lambda x, t: denoiser(p, x, t), x, sched, **kw))
    plan = samplers.make_plan(sched, **kw)

    @jax.jit
    def step_fn(p, state, i):
        x_in, t = samplers.model_input(plan, sched, state, i)
        return samplers.step(plan, sched, state, denoiser(p, x_in, t), i)

    def python_loop():
        state = samplers.init_state(plan, sched, x_T)
        for i in range(plan.num_steps):
            state = step_fn(params, state, jnp.int32(i))
        return state.x.block_until_ready()

    a = scan_fn(params, x_T)
    b = python_loop()
    max_diff = float(jnp.abs(a - b).max())
    t_scan = _median_time(lambda: scan_fn(params, x_T).block_until_ready(), args.repeats)
    t_loop = _median_time(python_loop, args.repeats)
    print(f"device={jax.devices()[0].platform} steps={args.steps} x={tuple(x_T.shape)} max|scan-loop|={max_diff:.1e}")
    print(f"(a) one jitted lax.scan        : {t_scan * 1e3:8.2f} ms")
    print(f"(b) Python loop of jitted step : {t_loop * 1e3:8.2f} ms")
    print(f"ratio loop / scan              : {t_loop / t_scan:8.2f}x")


if __name__ == "__main__":
    main()
