"""`python -m emu_jax.train --config ... --workdir ...` (same as `emu-video train`)."""

import sys

from emu_jax.cli import run

if __name__ == "__main__":
    run(["train", *sys.argv[1:]])
