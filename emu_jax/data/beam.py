"""Apache Beam for the data tools (optional extra `beam`): runner options, and one per-item function run
either in this process or in Beam workers.

A builder or tool writes its per-item work once, `fn(item) -> (key, value)`
or a `Skipped`; `examples` runs it as a generator (no Beam needed) or as a
Beam `PTransform` (TFDS's `_generate_examples` may return one), sending
skipped items to text files the driver merges afterwards.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Callable, Iterable

from emu_jax.errors import UserError

EXTRA = "beam"
INSTALL_HINT = f"pip install 'emu-jax[{EXTRA}]'"


class BeamMissing(UserError):
    """Raised when a `--beam` run is asked for but apache_beam cannot be imported (one line, exit 2)."""


class Skipped:
    """An item left out of a dataset: its position in the input, its path or key, and why."""

    __slots__ = ("index", "path", "reason")

    def __init__(self, index: int, path: str, reason: str):
        self.index, self.path, self.reason = int(index), str(path), str(reason)

    def to_json(self) -> str:
        return json.dumps({"index": self.index, "path": self.path, "reason": self.reason})

    def __reduce__(self):  # plain tuple pickling, so Beam's fallback coder and multiprocessing both carry it
        return Skipped, (self.index, self.path, self.reason)


def require_beam():
    """Imports and returns `apache_beam`, or raises BeamMissing naming the extra to install."""
    try:
        import apache_beam
    except ImportError as e:
        raise BeamMissing(
            f"--beam needs Apache Beam, which is not importable ({e}); install the '{EXTRA}' extra: {INSTALL_HINT}"
        ) from None
    return apache_beam


def default_flags() -> list[str]:
    """Local runs: the DirectRunner in one process per core (multi-processing, so workers decode in parallel)."""
    return [
        "--runner=DirectRunner",
        f"--direct_num_workers={os.cpu_count() or 1}",
        "--direct_running_mode=multi_processing",
    ]


def pipeline_options(flags: str | None = None):
    """`PipelineOptions` from a `--beam-options` string (shell-quoted flags), defaults filled in for the
    DirectRunner. Raises UserError for a string that does not split into `--flag[=value]` words."""
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        words = shlex.split(flags or "")
    except ValueError as e:
        raise UserError(f"--beam-options {flags!r} does not parse as shell words: {e}") from None
    bad = [w for w in words if not w.startswith("--")]
    if bad:
        raise UserError(
            f"--beam-options {flags!r}: {bad[0]!r} is not a --flag[=value] word "
            '(e.g. "--runner=DirectRunner --direct_num_workers=4")'
        )
    given = {w.split("=", 1)[0] for w in words}
    runner = next((w.split("=", 1)[1] for w in words if w.startswith("--runner=")), "DirectRunner")
    defaults = [
        f
        for f in default_flags()
        if f.split("=", 1)[0] not in given and (runner == "DirectRunner" or not f.startswith("--direct"))
    ]
    return PipelineOptions(flags=defaults + words)


def _is_skipped(result) -> bool:
    return isinstance(result, Skipped)


def _is_kept(result) -> bool:
    return not isinstance(result, Skipped)


def _skip_line(result: Skipped) -> str:
    return result.to_json()


def _expand(pbegin, items: list, fn: Callable, skips_prefix: str | None, label: str):
    import apache_beam as beam

    results = (
        pbegin
        | f"{label}Create" >> beam.Create(items)
        | f"{label}Reshuffle" >> beam.Reshuffle()  # spreads items over workers before the heavy step
        | f"{label}Work" >> beam.Map(fn)
    )
    if skips_prefix is not None:
        _ = (
            results
            | f"{label}Skipped" >> beam.Filter(_is_skipped)
            | f"{label}SkipJson" >> beam.Map(_skip_line)
            | f"{label}WriteSkips" >> beam.io.WriteToText(skips_prefix, file_name_suffix=".jsonl")
        )
    return results | f"{label}Kept" >> beam.Filter(_is_kept)


def examples(
    items: Iterable,
    fn: Callable,
    *,
    use_beam: bool,
    skipped: list | None = None,
    skips_prefix: str | None = None,
    label: str = "",
):
    """`fn` over `items`: a generator of its kept results (skips appended to `skipped`), or with `use_beam` a
    Beam PTransform whose skips are written as JSON lines to `skips_prefix*.jsonl` (read them with
    `read_skips`). `fn` must be picklable (a module-level function or a partial of one)."""
    if not use_beam:
        return _serial(items, fn, skipped)
    beam = require_beam()
    return beam.ptransform_fn(_expand)(list(items), fn, skips_prefix, label)


def _serial(items, fn, skipped):
    for item in items:
        result = fn(item)
        if isinstance(result, Skipped):
            if skipped is not None:
                skipped.append(result)
        else:
            yield result


def read_skips(pattern_prefix: str, delete: bool = True) -> list[Skipped]:
    """Skips written by `examples(use_beam=True)` under `pattern_prefix` (any filesystem Beam knows), then
    deletes those files."""
    from apache_beam.io.filesystems import FileSystems

    matches = FileSystems.match([pattern_prefix + "*"])[0].metadata_list
    out = []
    for m in matches:
        with FileSystems.open(m.path) as f:
            for line in f.read().decode().splitlines():
                if line.strip():
                    d = json.loads(line)
                    out.append(Skipped(d["index"], d["path"], d["reason"]))
    if delete and matches:
        FileSystems.delete([m.path for m in matches])
    return out
