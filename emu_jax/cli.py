"""`emu-video` command line: a thin dispatcher to one module per subcommand.

Each subcommand module exposes `add_arguments(parser)` and `main(args) -> int`
and is imported only when used, so `emu-video --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Sequence

from emu_jax.config import split_overrides

SUBCOMMANDS = {
    "sample": ("emu_jax.sample", "generate videos from prompts (keyframe -> video -> interpolation -> decode)"),
    "train": ("emu_jax.training.cli", "train a stage of the recipe from a config"),
    "aot": ("emu_jax.training.aot", "compile the train step ahead of time for a TPU topology and report memory"),
    "convert": ("emu_jax.convert.cli", "convert diffusers / transformers weights into an emu_jax checkpoint"),
    "data": ("emu_jax.data.cli", "build datasets, select high-motion clips, cache latents"),
    "demo": ("emu_jax.demo.cli", "train and evaluate the bundled moving-shapes demo"),
    "juice": ("emu_jax.juice.cli", "JUICE pairwise human evaluation: create, serve, report"),
}
# Modules a subcommand imports first: they register dataset kinds (the demo's `moving_shapes`) with
# emu_jax.data.registry, so the data layer offers them without importing the demo wing.
PLUGINS = {"data": ("emu_jax.demo.dataset",)}


def _available() -> dict[str, tuple[str, str]]:
    return {k: v for k, v in SUBCOMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emu-video", description="Emu Video in JAX: text -> keyframe -> video.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _available().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    if not argv or argv[0] not in available:
        parser = build_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose from {sorted(available)}")
        parser.parse_args(argv)  # handles --help
        parser.print_help()
        return 0 if not argv else 2
    name, rest = argv[0], argv[1:]
    for plugin in PLUGINS.get(name, ()):
        importlib.import_module(plugin)
    module = importlib.import_module(available[name][0])
    parser = argparse.ArgumentParser(prog=f"emu-video {name}", description=available[name][1])
    module.add_arguments(parser)
    try:
        rest, overrides = split_overrides(rest)
    except ValueError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    if overrides and not hasattr(args, "config"):
        parser.error(f"emu-video {name} takes no --config overrides, got {overrides[0][0]!r}")
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
