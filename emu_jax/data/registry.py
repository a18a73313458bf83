"""Dataset kinds that `emu-video data build` can write: a name, its arguments and a builder factory.

The data layer registers its own kinds (`video_text_folder`); an application registers more when it
is imported, so this layer never imports an application.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """`add_arguments(parser)` declares the build options; `make_builder(args)` returns a TFDS builder."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    make_builder: Callable[[argparse.Namespace], Any]


_KINDS: dict[str, DatasetKind] = {}


def register(kind: DatasetKind) -> DatasetKind:
    """Adds `kind`; registering the same name again replaces it (a module re-imported under reload)."""
    if not kind.name.isidentifier():
        raise ValueError(f"dataset kind name {kind.name!r} must be a Python identifier (TFDS builder names are)")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, DatasetKind]:
    """The registered kinds by name, in registration order."""
    return dict(_KINDS)
