"""The per-chip batch search of `emu-video aot` (train step and sampler alike) and its out-of-memory test."""

from __future__ import annotations

from typing import Any, Callable


def out_of_memory(e: Exception) -> bool:
    text = str(e).lower()
    return "resource_exhausted" in text or "out of memory" in text or ("exceeds" in text and "memory" in text)


def report_or_none(b: int, compile_fn: Callable[[], Any]) -> Any:
    """`compile_fn()`'s report, printed; None (with the compiler's reason) when batch `b` cannot fit,
    since the TPU compiler refuses such programs with an out-of-memory error."""
    try:
        report = compile_fn()
    except Exception as e:
        if not out_of_memory(e):
            raise
        why = next((ln for ln in str(e).splitlines() if "memory" in ln.lower()), "")[:300]
        print(f"  batch {b}: does not fit (compile-time out of memory): {why}", flush=True)
        return None
    print(report.table(), flush=True)
    return report


def find_max_batch(try_batch: Callable[[int], Any], start: int = 1, limit: int = 4096) -> tuple[int, dict[int, Any]]:
    """Largest per-device batch whose report fits (None = compile ran out of memory):
    doubling from `start`, then bisection. Returns (best or 0, every tried report)."""
    tried: dict[int, Any] = {}

    def fits(b: int) -> bool:
        if b not in tried:
            tried[b] = try_batch(b)
        return tried[b] is not None and tried[b].fits

    lo, hi, b = 0, None, start
    while b <= limit:
        if not fits(b):
            hi = b
            break
        lo, b = b, b * 2
    if hi is None:
        return lo, tried
    while hi - lo > 1:  # lo fits (or is 0), hi does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, tried
