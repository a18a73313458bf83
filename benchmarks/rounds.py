"""The benchmark protocol shared by the side-by-side benchmarks: interleaved rounds, median and min, load.

On a shared machine other processes steal cores at random, so every variant runs once per round,
in forward order on even rounds and reversed on odd ones (A B, B A, A B, ...), which exposes all
sides to the same load and cancels any first-/second-slot bias; the median is the result, the min
the best case. A measurement only counts if the load average (printed at start and end) stayed low.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Callable


def load_line(when: str) -> str:
    """`load <when>: 1 / 5 / 15 min averages` of this machine, for the benchmark's output."""
    one, five, fifteen = os.getloadavg()
    return f"load {when}: {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min), {os.cpu_count()} cores"


def interleaved_rounds(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float]]:
    """{name: (median s, min s)}: one untimed warm-up call each (JAX compiles there), then `rounds`
    rounds that call every variant once, order reversed on every other round."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds} must be >= 1")
    for fn in variants.values():
        fn()
    names = list(variants)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def param_gap(a: int, b: int) -> float:
    """Relative gap |a - b| / max(a, b) of two parameter counts (the protocol allows <= 5%)."""
    return abs(a - b) / max(a, b)


def child_stdout(script: str, args: list[str], env: dict[str, str]) -> str:
    """stdout of `python script *args` in a fresh process: for sides whose first-use cost (compiles,
    imports) is what is measured."""
    return subprocess.run([sys.executable, script, *args], env=env, capture_output=True, text=True, check=True).stdout
