"""Throughput of `emu-video serve`: 8 concurrent clients vs the same 8 requests one at a time.

    JAX_PLATFORMS=cpu python benchmarks/bench_serve.py [--checkpoint emu_jax/assets/demo_model] \
        [--steps 5] [--batch-size 4] [--rounds 2] [--no-interp]

A server runs in this process on 127.0.0.1 (the real HTTP path: Flask + werkzeug, JSON, polling).
Rounds interleave the two modes so a busy machine slows both alike; the load average is printed
with each round, and a warm-up request per mode compiles first (not timed).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import threading
import time
import urllib.request

from emu_jax.sampling import serve
from emu_jax.sampling.cli import DEMO_MODEL


def post_and_wait(base: str, prompt: str, seed: int, steps: int) -> float:
    req = urllib.request.Request(
        f"{base}/v1/videos",
        json.dumps({"prompt": prompt, "seed": seed, "steps": steps}).encode(),
        headers={"Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        job = json.loads(r.read())["id"]
    while True:
        with urllib.request.urlopen(f"{base}/v1/videos/{job}") as r:
            view = json.loads(r.read())
        if view["status"] in ("done", "error"):
            assert view["status"] == "done", view
            with urllib.request.urlopen(f"{base}/v1/videos/{job}.mp4") as r:
                r.read()
            return time.perf_counter() - t0
        time.sleep(0.05)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=DEMO_MODEL)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-wait-ms", type=float, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--no-interp", action="store_true")
    a = p.parse_args()
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per poll would drown the results
    engine = serve.Engine(a.checkpoint, batch_size=a.batch_size, max_wait_ms=a.max_wait_ms, use_interp=not a.no_interp)
    server = make_server("127.0.0.1", 0, serve.make_app(engine), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    prompts = [
        f"a {c} circle moving {d}"
        for c, d in zip(["red", "blue", "green", "yellow"] * 2, ["left", "right", "up", "down"] * 2)
    ][: a.clients]
    post_and_wait(base, prompts[0], 0, a.steps)  # compile (batch shape is fixed, so one warm-up serves both)
    results = {"concurrent": [], "sequential": []}
    for r in range(a.rounds):
        for mode in ("concurrent", "sequential") if r % 2 == 0 else ("sequential", "concurrent"):
            t0 = time.perf_counter()
            if mode == "concurrent":
                with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
                    list(pool.map(lambda i: post_and_wait(base, prompts[i], i, a.steps), range(len(prompts))))
            else:
                for i, pr in enumerate(prompts):
                    post_and_wait(base, pr, i, a.steps)
            dt = time.perf_counter() - t0
            results[mode].append(len(prompts) / dt)
            print(
                f"round {r} {mode:10s}: {len(prompts)} requests in {dt:6.1f}s = {len(prompts) / dt:.3f} req/s  "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    c, s = statistics.median(results["concurrent"]), statistics.median(results["sequential"])
    print(
        f"median: concurrent {c:.3f} req/s, sequential {s:.3f} req/s, speed-up x{c / s:.2f}; "
        f"batches run {engine.m_batches._value.get():.0f}"
    )
    engine.drain()
    server.shutdown()


if __name__ == "__main__":
    main()
