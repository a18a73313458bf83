"""Captions file (CSV / TSV with a header, or JSON lines) -> validated rows, checked before any video is probed.

Every problem is a `UserError` (a ValueError: one line, exit 2) naming the file (and line) and what is
allowed, so a bad file fails in a second instead of after probing every
video or deep inside the TFDS writer.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath

from emu_jax.errors import UserError

CAPTION_COLUMNS = ("path", "caption")
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def read_captions(captions_file: str | os.PathLike, videos_dir: str | os.PathLike | None = None) -> list[dict]:
    """Reads caption rows -> [{'path', 'caption', 'line'}, ...] in file order.

    Raises UserError (file and line named) for: an unknown suffix, text that
    is not UTF-8, missing `path` / `caption` columns, a row without a path or
    caption (or only whitespace), a path that leaves `videos_dir` (absolute or
    with `..`), or no rows at all. A UTF-8 byte-order mark is ignored.
    """
    path = os.fspath(captions_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"captions file {path!r} does not exist")
    if not path.endswith(SUFFIXES):
        raise UserError(f"captions file {path!r} must end in .csv, .tsv, .jsonl or .json (JSON lines)")
    try:
        # utf-8-sig drops the BOM spreadsheet programs put first, which would otherwise rename column 'path'.
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise UserError(
            f"captions file {path}:{line} is not UTF-8 (byte 0x{e.object[e.start]:02x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None
    rows = _jsonl_rows(path, text) if path.endswith((".jsonl", ".json")) else _csv_rows(path, text)
    if not rows:
        raise UserError(f"captions file {path} has no rows")
    for row in rows:
        _check_row(path, row, videos_dir)
    return rows


def _jsonl_rows(path: str, text: str) -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"captions file {path}:{n} is not valid JSON: {e.msg}") from None
        if not isinstance(row, dict) or not all(c in row for c in CAPTION_COLUMNS):
            raise UserError(
                f"{path}:{n}: each JSONL line needs keys {CAPTION_COLUMNS}, got "
                f"{sorted(row) if isinstance(row, dict) else type(row).__name__}"
            )
        rows.append({"path": row["path"], "caption": row["caption"], "line": n})
    return rows


def _csv_rows(path: str, text: str) -> list[dict]:
    reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.endswith(".tsv") else ",")
    fields = [(name or "").strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = fields
    missing = [c for c in CAPTION_COLUMNS if c not in fields]
    if missing:
        raise UserError(
            f"captions file {path} lacks column(s) {missing}; found {fields}; needs a header with {CAPTION_COLUMNS}"
        )
    return [
        {"path": row["path"], "caption": row["caption"], "line": reader.line_num}
        for row in reader
        if any((v or "").strip() for k, v in row.items() if k is not None)
    ]


def _check_row(path: str, row: dict, videos_dir) -> None:
    where = f"captions file {path}:{row['line']}"
    for column in CAPTION_COLUMNS:
        value = row[column]
        if not isinstance(value, str) or not value.strip():
            shown = "missing" if value is None else repr(value)
            raise UserError(f"{where}: {column} is {shown}; every row needs a non-empty path and caption")
    rel = row["path"].replace("\\", "/")
    if posixpath.isabs(rel) or os.path.isabs(row["path"]) or ".." in rel.split("/"):
        raise UserError(
            f"{where}: path {row['path']!r} leaves --videos"
            f"{f' {os.fspath(videos_dir)!r}' if videos_dir is not None else ''}; "
            "paths must be relative to it, without '..'"
        )
