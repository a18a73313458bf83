"""Reading a training run's weights (`train.init_from`, exports): the whole saved state, as before,
against the weights subtree alone (what `model_folder.load_checkpoint` does now).

    JAX_PLATFORMS=cpu python benchmarks/bench_init_from_restore.py RUN_DIR [--rounds 6]

Interleaved rounds (benchmarks/rounds.py); prints median and min seconds per side and the load.
"""

import argparse
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from rounds import interleaved_rounds, load_line

from emu_jax import model_folder
from emu_jax.models.trainable import merge_params


def whole_state(run: str) -> dict:
    path = os.path.join(run, "checkpoints", str(model_folder._latest_step(run)), "state")
    state = ocp.StandardCheckpointer().restore(path)
    weights = state["ema"] if state.get("ema") else state["trainable"]
    return jax.tree.map(np.asarray, merge_params(weights, state["frozen"]))


def weights_only(run: str) -> dict:
    return model_folder.load_checkpoint(run)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    a, b = model_folder.normalize_params(whole_state(args.run)), weights_only(args.run)
    same = jax.tree.map(lambda x, y: bool((np.asarray(x) == np.asarray(y)).all()), a, b)
    assert all(jax.tree.leaves(same)), "the two reads differ"
    print(load_line("start"))
    variants = {"whole state": lambda: whole_state(args.run), "weights only": lambda: weights_only(args.run)}
    for name, (median, best) in interleaved_rounds(variants, args.rounds).items():
        print(f"{name:13s} median {median:.3f} s  min {best:.3f} s  ({args.rounds} rounds)")
    print(load_line("end"))


if __name__ == "__main__":
    main()
