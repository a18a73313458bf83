"""A training run's checkpoint saves on 8 CPU devices: Orbax's replica-parallel save (its default
on CPU) against one write per array (what `training.checkpoint` sets on the CPU backend).

    JAX_PLATFORMS=cpu python benchmarks/checkpoint_save.py [--rounds 5] [--stage t2v_s3]

Each round starts a fresh process per side (a save's slices compile on first use, so the first save
of a process is what a short run or a test pays), builds the tiny demo `--stage` model, saves it
twice and restores it; interleaved rounds (benchmarks/rounds.py), median and min per side, and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def child(replica_parallel: bool, stage: str) -> None:
    import tempfile

    import jax
    import numpy as np

    from emu_jax.demo import recipe
    from emu_jax.training import checkpoint, loop

    if replica_parallel:
        checkpoint._save_each_array_once_on_cpu = lambda: None  # Orbax's own default
    workdir = tempfile.mkdtemp()
    cfg = recipe.stage_config(stage, "tiny", workdir)
    cfg.train.init_from = ""
    run = loop.make_run(cfg)
    state = jax.block_until_ready(run.init_state())
    ckpt = checkpoint.RunCheckpointer(workdir)
    seconds = []
    for step in (1, 2):
        t0 = time.perf_counter()
        ckpt.save(step, state, force=True)
        ckpt.wait()
        seconds.append(time.perf_counter() - t0)
    restored = ckpt.restore(2, run.abstract_state())
    same = all(
        (np.asarray(a) == np.asarray(b)).all() for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state))
    )
    assert same, "the restored state differs from the saved one"
    print(f"SAVES {seconds[0]:.3f} {seconds[1]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stage", default="t2v_s3", help="tiny demo sub-stage whose model is saved")
    ap.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child == "on", args.stage)
    from rounds import child_stdout, interleaved_rounds, load_line

    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    saves: dict[str, list[tuple[float, float]]] = {"replica-parallel": [], "one write per array": []}

    def side(name: str, flag: str):
        def go():
            out = child_stdout(__file__, ["--child", flag, "--stage", args.stage], env)
            first, second = (float(x) for x in out.split("SAVES")[1].split())
            saves[name].append((first, second))

        return go

    print(load_line("start"))
    interleaved_rounds(
        {"replica-parallel": side("replica-parallel", "on"), "one write per array": side("one write per array", "off")},
        args.rounds,
    )
    for name, rows in saves.items():
        rows = rows[1:]  # the untimed warm-up round
        for i, label in enumerate(("first save", "second save")):
            xs = [r[i] for r in rows]
            print(f"{name:20s} {label}: median {statistics.median(xs):.2f} s  min {min(xs):.2f} s  ({len(xs)} rounds)")
    print(load_line("end"))


if __name__ == "__main__":
    main()
