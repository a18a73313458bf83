"""Progress lines of a sampling run on stderr: `stage: step i/S, elapsed, ETA`, and free-form notes."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Prints `stage: step i/S, elapsed, ETA` lines to a stream (stderr by default)."""

    def __init__(self, enabled: bool = True, stream: Any = None):
        self.enabled, self.stream = enabled, stream or sys.stderr

    def report(self, label: str, done: int, total: int, elapsed: float) -> None:
        if not self.enabled:
            return
        eta = elapsed / done * (total - done) if done else float("nan")
        print(f"{label}: step {done}/{total}  {elapsed:.1f}s elapsed, ETA {eta:.1f}s", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)
