"""Statistics for pairwise human evaluation: majority vote per pair, Wilson
intervals for win rates, Fleiss' kappa, and agreement fractions.

Votes are system identities, `a` / `b` / `tie`: sides were randomised per
rater, so agreement is measured on which *system* won, never on screen side.
Pure functions of plain Python / NumPy data, so they are checked by hand.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

CATEGORIES = ("a", "b", "tie")
NO_MAJORITY = "none"
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0.

    Preferred over the normal interval because it stays inside [0, 1] and is
    sensible at 0/n and n/n, which small human studies hit often.
    """
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def majority(votes: Sequence[str]) -> str:
    """Label holding a strict majority (> half) of `votes`, else `'none'`.

    With 5 raters and 3 labels this equals "most votes, no tie for first".
    A majority for 'tie' returns 'tie'; both count as ties in win rates.
    """
    if not votes:
        raise ValueError("majority of an empty vote list is undefined")
    label, count = Counter(votes).most_common(1)[0]
    return label if 2 * count > len(votes) else NO_MAJORITY


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa for `counts` of shape (N subjects, k categories).

    `counts[i, j]` is how many raters put subject i in category j; every row
    must sum to the same n >= 2 raters. Returns nan when chance agreement is 1
    (all ratings in one category), where kappa is undefined.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"counts must have shape (N subjects, k categories), got shape {c.shape}")
    if (c < 0).any() or (c != np.round(c)).any():
        raise ValueError("counts must be non-negative integers")
    n_per = c.sum(axis=1)
    n = n_per[0]
    if (n_per != n).any() or n < 2:
        raise ValueError(f"every subject needs the same number (>= 2) of ratings; row sums are {n_per.tolist()}")
    p_j = c.sum(axis=0) / c.sum()
    p_i = ((c * c).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), (p_j * p_j).sum()
    if math.isclose(p_e, 1.0):
        return math.nan
    return float((p_bar - p_e) / (1 - p_e))


def category_counts(votes_by_pair: Mapping[int, Sequence[str]], categories: Sequence[str] = CATEGORIES) -> np.ndarray:
    """(N pairs, k categories) count table in the order of `votes_by_pair`."""
    index = {c: j for j, c in enumerate(categories)}
    out = np.zeros((len(votes_by_pair), len(categories)), np.int64)
    for i, votes in enumerate(votes_by_pair.values()):
        for v in votes:
            if v not in index:
                raise ValueError(f"vote {v!r} is not one of {tuple(categories)}")
            out[i, index[v]] += 1
    return out


def question_stats(votes_by_pair: Mapping[int, Sequence[str]]) -> dict:
    """Per-question summary over pairs with at least one vote.

    Returns outcome counts (a / b / tie / none), win rates over all judged
    pairs with Wilson 95% intervals (tie and no-majority pairs count against
    both systems), the preference for a among decided pairs, Fleiss' kappa
    (over the pairs with the most common number >= 2 of votes), and the
    fractions of pairs with complete agreement vs a split.
    """
    judged = {pid: list(v) for pid, v in votes_by_pair.items() if v}
    n = len(judged)
    outcomes = {pid: majority(v) for pid, v in judged.items()}
    tally = Counter(outcomes.values())
    wins_a, wins_b = tally["a"], tally["b"]
    ties = tally["tie"] + tally[NO_MAJORITY]

    def rate(k: int, total: int) -> dict:
        lo, hi = wilson_interval(k, total)
        return {"count": k, "n": total, "rate": k / total if total else math.nan, "ci95": [lo, hi]}

    sizes = Counter(len(v) for v in judged.values() if len(v) >= 2)
    kappa, kappa_pairs, kappa_raters = math.nan, 0, 0
    if sizes:
        kappa_raters = max(sizes, key=lambda s: (sizes[s], s))
        subset = {pid: v for pid, v in judged.items() if len(v) == kappa_raters}
        kappa_pairs = len(subset)
        kappa = fleiss_kappa(category_counts(subset))
    multi = [v for v in judged.values() if len(v) >= 2]
    unanimous = sum(len(set(v)) == 1 for v in multi)
    return {
        "n_pairs": n,
        "outcomes": {"a": wins_a, "b": wins_b, "tie": tally["tie"], "no_majority": tally[NO_MAJORITY]},
        "win_a": rate(wins_a, n),
        "win_b": rate(wins_b, n),
        "tie": rate(ties, n),
        "preference_a_decided": rate(wins_a, wins_a + wins_b),
        "fleiss_kappa": kappa,
        "kappa_pairs": kappa_pairs,
        "kappa_raters": kappa_raters,
        "agreement": {
            "pairs_with_2plus_votes": len(multi),
            "complete": unanimous / len(multi) if multi else math.nan,
            "split": (len(multi) - unanimous) / len(multi) if multi else math.nan,
        },
        "per_pair": outcomes,
    }
