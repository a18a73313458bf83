"""Fresh parameters in a new process: the VAE and text encoders initialised eagerly (op by op, as before)
against one compiled init each (`models.compiled_init`, what the U-Net already used).

    JAX_PLATFORMS=cpu python benchmarks/init_params.py [--rounds 5] [--stage t2v_s3] [--cold]

Every training or sampling process without a checkpoint to load pays this once. Each round starts a fresh
process per side, with a persistent compilation cache that the untimed warm-up round fills (as a test
suite's or a user's later processes find it; `--cold`: an empty cache for every process, as a fresh
machine's first run), and times `EmuModel.init` of the tiny demo `--stage` model;
interleaved rounds (benchmarks/rounds.py), median and min per side, and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile


def child(eager: bool, stage: str) -> None:
    import time

    import jax

    from emu_jax.demo import recipe
    from emu_jax.models import autoencoder, text
    from emu_jax.training import loop

    if eager:  # the old init: each module's Flax init run op by op
        autoencoder._jitted_init = lambda cfg: autoencoder.AutoencoderKL(cfg).init
        text._jitted_init = lambda cfg: text.build_module(cfg).init
    cfg = recipe.stage_config(stage, "tiny", tempfile.mkdtemp())
    cfg.train.init_from = ""
    model = loop.make_run(cfg).model
    t0 = time.perf_counter()
    jax.block_until_ready(model.init(jax.random.key(0)))
    print(f"INIT {time.perf_counter() - t0:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stage", default="t2v_s3", help="tiny demo sub-stage whose model is initialised")
    ap.add_argument("--cold", action="store_true", help="an empty compilation cache for every process")
    ap.add_argument("--child", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child == "eager", args.stage)
    from rounds import child_stdout, interleaved_rounds, load_line

    cache = tempfile.mkdtemp(prefix="init_bench_cache_")
    seconds: dict[str, list[float]] = {"eager": [], "compiled": []}

    def side(name: str):
        def go():
            dir_ = tempfile.mkdtemp(prefix="init_bench_cache_") if args.cold else cache
            env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=dir_)
            out = child_stdout(__file__, ["--child", name, "--stage", args.stage], env)
            seconds[name].append(float(out.split("INIT")[1].split()[0]))

        return go

    print(load_line("start"))
    interleaved_rounds({name: side(name) for name in seconds}, args.rounds)
    for name, xs in seconds.items():
        xs = xs[1:]  # the untimed warm-up round
        print(f"{name:9s} EmuModel.init: median {statistics.median(xs):.2f} s  min {min(xs):.2f} s  ({len(xs)} rounds)")
    print(load_line("end"))


if __name__ == "__main__":
    main()
