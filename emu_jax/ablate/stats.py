"""Bootstrap intervals over per-item values: each metric's mean, and paired arm-minus-baseline differences."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean and percentile-bootstrap interval of the mean of per-item `values` (items resampled with
    replacement). Constant values give a zero-width interval, so identical arms compare exactly."""
    x = np.asarray(values, np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no per-item values to bootstrap")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # Rounding in the quantile can put the interval a hair off a constant mean; clamp to the sample range.
    lo, hi = max(float(lo), float(x.min())), min(float(hi), float(x.max()))
    return {"mean": float(x.mean()), "lo": lo, "hi": hi, "n": int(x.size)}


def paired(arm_values, base_values, **kw) -> dict:
    """Bootstrap interval of the mean per-item difference arm - baseline (same items, same noise), and
    whether the interval excludes 0 (a difference the evaluation resolves)."""
    a, b = np.asarray(arm_values, np.float64), np.asarray(base_values, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same items: {a.shape} vs {b.shape}")
    ci = bootstrap_ci(a - b, **kw)
    ci["excludes_zero"] = not (ci["lo"] <= 0.0 <= ci["hi"])
    return ci


def set_intervals(distance, features, base_features=None, *, resamples: int = 2000, seed: int = 0, level: float = 0.95):
    """A set-level metric (`distance(features[items])`, e.g. a Fréchet distance to a fixed reference set):
    its value on all items with a percentile-bootstrap interval over resampled items, and with
    `base_features` the paired difference on the very same resampled items (identical arms differ by 0)."""
    f = np.asarray(features)
    n = f.shape[0]
    if n < 2:
        raise ValueError(f"a set-level metric needs >= 2 items, got {n}")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    alpha = (1.0 - level) / 2.0
    values = np.asarray([distance(f[i]) for i in idx])
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    ci = {"mean": float(distance(f)), "lo": float(lo), "hi": float(hi), "n": int(n)}
    if base_features is None:
        return ci, None
    b = np.asarray(base_features)
    if b.shape != f.shape:
        raise ValueError(f"paired comparison needs the same items: {f.shape} vs {b.shape}")
    diffs = values - np.asarray([distance(b[i]) for i in idx])
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    d = {"mean": ci["mean"] - float(distance(b)), "lo": float(lo), "hi": float(hi), "n": int(n)}
    d["excludes_zero"] = not (d["lo"] <= 0.0 <= d["hi"])
    return ci, d
