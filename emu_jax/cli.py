"""`emu-video` command line: a thin dispatcher to one module per subcommand.

Each subcommand module exposes `add_arguments(parser)` and `main(args) -> int`
and is imported only when used, so `emu-video --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from typing import NoReturn, Sequence

from emu_jax.config import split_overrides
from emu_jax.errors import PATH_ERRORS, EmuError, UserError, debug_enabled, one_line

SUBCOMMANDS = {
    "sample": ("emu_jax.sampling.cli", "generate videos from prompts (keyframe -> video -> interpolation -> decode)"),
    "serve": ("emu_jax.sampling.serve", "serve videos over HTTP, batching concurrent requests on one checkpoint"),
    "train": ("emu_jax.training.cli", "train a stage of the recipe from a config"),
    "aot": (
        "emu_jax.training.aot",
        "compile the train step or the sampler ahead of time for a TPU topology and report memory and cost",
    ),
    "convert": ("emu_jax.convert.cli", "convert diffusers / transformers weights into an emu_jax checkpoint"),
    "data": ("emu_jax.data.cli", "build datasets, select high-motion clips, cache latents"),
    "demo": ("emu_jax.demo.cli", "train and evaluate the bundled moving-shapes demo"),
    "juice": ("emu_jax.juice.cli", "JUICE pairwise human evaluation: create, serve, report"),
    "ablate": ("emu_jax.ablate.cli", "ablation studies: arms of config overrides, compared with paired intervals"),
    "metrics": ("emu_jax.metrics.cli", "FID / FVD / CLIP score of generated videos against real ones"),
}
# Modules a subcommand imports first: they register dataset kinds (the demo's `moving_shapes`) with
# emu_jax.data.registry, so the data layer offers them without importing the demo wing.
PLUGINS = {"data": ("emu_jax.demo.dataset",)}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UserError instead of printing usage + exiting, so bad flags take the one error path."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def _available() -> dict[str, tuple[str, str]]:
    return {k: v for k, v in SUBCOMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="emu-video", description="Emu Video in JAX: text -> keyframe -> video.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _available().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; every user error ends here as one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or debug_enabled()
    argv = [a for a in argv if a != "--debug"]
    prog = f"emu-video {argv[0]}" if argv and not argv[0].startswith("-") else "emu-video"
    if not debug:  # Orbax / TFDS log each restore and save at INFO (via absl): chatter, not progress
        logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        return _dispatch(argv)
    except EmuError as e:
        return _report(prog, one_line(e), e.exit_code, debug)
    except PATH_ERRORS as e:
        return _report(prog, one_line(e), 2, debug)
    except SystemExit as e:
        if not isinstance(e.code, str):  # argparse --help (0) and explicit exit codes pass through
            raise
        # `raise SystemExit("message")` would exit 1 with the message: a user error, so exit 2 instead.
        return _report(prog, e.code.removeprefix(f"{prog}: ").removeprefix("error: "), 2, debug)
    except KeyboardInterrupt:
        return _report(prog, "interrupted", 130, debug)


def _report(prog: str, message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    hint = "" if debug else " (--debug or EMU_DEBUG=1 shows the traceback)" if code != 2 else ""
    print(f"{prog}: error: {message}{hint}", file=sys.stderr, flush=True)
    return code


def _dispatch(argv: list[str]) -> int:
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
    parser = ArgumentParser(prog=f"emu-video {name}", description=available[name][1])
    module.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also: env EMU_DEBUG=1)")
    try:
        rest, overrides = split_overrides(rest)
    except ValueError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    if overrides and not hasattr(args, "config"):
        parser.error(f"emu-video {name} takes no --config overrides, got {overrides[0][0]!r}")
    return int(module.main(args) or 0)


def _drop_closed_loop_callbacks(hook):
    """sys.unraisablehook that drops "Event loop is closed": tensorstore reads still in flight when Orbax
    abandoned a failed restore report it from their I/O threads, around our one-line error."""

    def unraisablehook(unraisable):
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            hook(unraisable)

    return unraisablehook


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The `emu-video` script: `main`, then exit with its status.

    After a user error (status 2) the process's stderr is closed before interpreter shutdown, since
    asyncio then logs the abandoned restore's sibling reads ("exception was never retrieved").
    """
    sys.unraisablehook = _drop_closed_loop_callbacks(sys.unraisablehook)
    code = main(argv)
    if code == 2:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.exit(code)


if __name__ == "__main__":
    run()
