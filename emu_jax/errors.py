"""The one error path of every `emu-video` command.

A subcommand raises `UserError` for anything the user can fix (a bad flag,
config key or value, a missing / corrupt / mismatched checkpoint, an
unreadable input, an unwritable output); `emu_jax.cli.main` catches it once,
prints one line naming the problem and exits 2. `--debug` or `EMU_DEBUG=1`
shows the traceback instead. `RunError` is the same for a run that stopped
for a reason the user must look at (a non-finite loss): one line, exit 1.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

EXIT_USAGE = 2
EXIT_FAILED = 1


class EmuError(Exception):
    """Base of the errors `emu-video` reports as one line (never a traceback unless --debug)."""

    exit_code = EXIT_FAILED


class UserError(EmuError, ValueError):
    """A mistake in what the user gave: one line naming the bad thing and what is allowed; exit 2.

    A ValueError, so code and tests that expect ValueError for bad input keep working.
    """

    exit_code = EXIT_USAGE


class RunError(EmuError, RuntimeError):
    """A run stopped for a reason the user must act on (e.g. a non-finite loss); exit 1."""


# File-system errors on paths the user named are user errors too (missing input, unwritable output).
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """UserError unless `path` can be written as a file: not a folder, in an existing writable folder.

    Called before any work, so an hour of sampling never ends in an unwritable path.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder; give a file name")
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UserError(f"{flag} {path} is not writable")


def debug_enabled() -> bool:
    return os.environ.get("EMU_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def as_user_error(what: str = "", types: tuple[type[BaseException], ...] = (ValueError, OSError)) -> Iterator[None]:
    """Re-raise `types` raised inside the block as a UserError (prefixed with `what`), cause kept for --debug."""
    try:
        yield
    except EmuError:
        raise
    except types as e:
        raise UserError(f"{what}: {one_line(e)}" if what else one_line(e)) from e


def one_line(e: BaseException) -> str:
    """The message of `e` on one line (multi-line messages are joined with ' | ')."""
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines)


def root_cause(e: BaseException) -> str:
    """The innermost cause of a (possibly grouped, chained) exception, on one line.

    Orbax wraps a missing or truncated file in layers of asyncio / TensorStore
    errors; the innermost one names the file.
    """
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        inner = e.exceptions[0] if isinstance(e, BaseExceptionGroup) and e.exceptions else e.__cause__ or e.__context__
        if inner is None:
            break
        e = inner
    text = re.sub(r"\s*\[(tensorstore_spec|source locations)=.*?\]*$", "", one_line(e))
    return f"{type(e).__name__}: {text}"
