"""`python -m emu_jax.train --config ... --workdir ...` (same as `emu-video train`)."""

import sys

from emu_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
