"""Videos per minute of `emu-video sample` on the bundled model against `--batch-size` (1, 2, 4, 8).

Every variant samples the same `--prompts` N demo captions (default 8) at one batch size the way
`emu-video sample` does: `Pipeline.run_batch` per batch (the last one padded), then
`outputs.write_sample` per item (keyframe png, mp4, gif, json; after interpolation the 16 fps mp4
and gif too) into a scratch folder. Each batch size runs with interpolation (what the user gets by
default) and without it (`--no-interp`: the same compiled keyframe / video stages, interpolation
skipped), unless `--interp on|off` picks one. Protocol (benchmarks/rounds.py): a warm-up call per
variant (its first batch only) compiles, cold (the persistent compilation cache is left off), and
is reported separately; then `--rounds` interleaved rounds, median and min; the load at start and end.
Not a test (pytest does not collect it; tests/sampling/test_bench_sample_batch.py runs it tiny).

    JAX_PLATFORMS=cpu python benchmarks/bench_sample_batch.py [--batches 1,2,4,8] [--prompts 8] \
        [--rounds 5] [--steps N (default: the checkpoint's)] [--interp both|on|off]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rounds import interleaved_rounds, load_line  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    from emu_jax.sampling.cli import DEMO_MODEL

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=DEMO_MODEL)
    ap.add_argument("--batches", default="1,2,4,8", help="comma-separated batch sizes")
    ap.add_argument("--prompts", type=int, default=8, help="videos per variant per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5 for a reported number)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    ap.add_argument("--interp", choices=("both", "on", "off"), default="both")
    a = ap.parse_args(argv)
    try:
        a.batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        ap.error(f"--batches {a.batches!r}: give comma-separated integers, e.g. 1,2,4,8")
    if min(a.batches) < 1 or a.prompts < 1 or a.rounds < 1:
        ap.error(f"--batches {a.batches}, --prompts {a.prompts}, --rounds {a.rounds}: each must be >= 1")
    return a


def demo_prompts(n: int) -> list[str]:
    """N held-out demo captions ('a red circle moving left on a black background'), fixed by seed 0."""
    from emu_jax.demo import evaluate, shapes

    return [shapes.caption(w) for w in evaluate.prompt_set(n, 0)]


def sample_fn(pipe, prompts: list[str], out: str, interpolate: bool, warm: dict, key):
    """One `emu-video sample` of `prompts` (seed 0) on a built Pipeline: sample, then write every file.

    The first call (the protocol's untimed warm-up) runs only the first batch, which compiles every
    program the rest will use (the last batch is padded to the same shape); its seconds go to warm[key]."""
    from emu_jax.sampling import outputs

    common = {"seed": 0, "settings": pipe.settings.to_dict()}
    b = pipe.batch_size

    def run():
        t0 = time.perf_counter()
        for s in range(0, len(prompts) if key in warm else b, b):
            part = prompts[s : s + b]
            for sample in pipe.run_batch(part, list(range(s, s + len(part))), 0, interpolate=interpolate):
                outputs.write_sample(out, sample, common)
        dt = time.perf_counter() - t0
        print(f"  batch {key[0]}, interp {key[1]}: {dt:.1f}s{'' if key in warm else ' (warm-up)'}", file=sys.stderr)
        warm.setdefault(key, dt)

    return run


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    print(load_line("at start"), flush=True)
    import jax

    from emu_jax.sampling.pipeline import Pipeline

    prompts = demo_prompts(a.prompts)
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[a.interp]
    overrides = {"num_steps": a.steps} if a.steps else {}
    variants, warm, compile_s, pipes, folders = {}, {}, {}, {}, {}
    scratch = tempfile.TemporaryDirectory(prefix="bench_sample_batch_")
    for b in a.batches:
        pipes[b] = Pipeline.from_checkpoint(
            a.checkpoint,
            use_interp=True in modes,
            overrides=overrides,
            batch_size=b,
            progress=False,
            compilation_cache=False,
        )
        for interp in modes:
            key = (b, interp)
            folders[key] = f"b{b}_{'interp' if interp else 'nointerp'}"
            out = os.path.join(scratch.name, folders[key])
            os.makedirs(out)
            variants[key] = sample_fn(pipes[b], prompts, out, interp, warm, key)
    p = pipes[a.batches[0]]
    stages = "keyframe + video" + (" + interpolation" if p.interp is not None and True in modes else "")
    print(
        f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}; {a.checkpoint}: "
        f"{p.main.model.config.resolution}px, {p.settings.num_steps} {p.settings.method} steps, {stages} + decode "
        f"+ files; {len(prompts)} prompts per variant per round, {a.rounds} rounds",
        flush=True,
    )
    rows = interleaved_rounds(variants, a.rounds)
    for b in a.batches:
        compile_s[b] = sum(pipes[b].compile_s.values())
    n = len(prompts)
    head = ("batch", "interp", "median s", "min s", "videos/min", "best", "warm-up s")
    print("\n{:>5s} {:>6s} {:>9s} {:>7s} {:>11s} {:>6s} {:>10s}".format(*head))
    for (b, interp), (med, best) in rows.items():
        print(
            f"{b:5d} {'yes' if interp else 'no':>6s} {med:9.2f} {best:7.2f} {n / med * 60:11.1f} "
            f"{n / best * 60:6.1f} {warm[(b, interp)]:10.1f}"
        )
    print("\nvideos/min = prompts / median s x 60 (best: from the min); warm-up = one batch, compiling cold")
    print("stage compile s per batch size (Pipeline.compile_s, keyframe + video [+ interp]): ", end="")
    print(", ".join(f"{b}: {s:.1f}" for b, s in compile_s.items()))
    print(load_line("at end"))
    files = {k: sorted(os.listdir(os.path.join(scratch.name, d))) for k, d in folders.items()}
    scratch.cleanup()
    return {"rows": rows, "warm": warm, "compile_s": compile_s, "prompts": n, "files": files}


if __name__ == "__main__":
    main()
