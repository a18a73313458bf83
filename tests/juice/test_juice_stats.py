"""JUICE statistics against hand-computed values and a textbook Fleiss' kappa table."""

import math

import numpy as np
import pytest

from emu_jax.juice.stats import category_counts, fleiss_kappa, majority, question_stats, wilson_interval

# Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories.
WIKI_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Four pairs, five raters each (hand-worked in the test below).
HAND_VOTES = {
    1: ["a", "a", "a", "b", "b"],
    2: ["b"] * 5,
    3: ["a", "a", "tie", "tie", "b"],
    4: ["tie", "tie", "tie", "a", "b"],
}


def test_fleiss_kappa_wikipedia_example():
    assert fleiss_kappa(WIKI_TABLE) == pytest.approx(0.2099, abs=5e-4)
    assert round(fleiss_kappa(WIKI_TABLE), 3) == 0.210


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa([[5, 0], [0, 5]]) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only: chance agreement 1
    # Half the raters each way on every subject: agreement below chance.
    assert fleiss_kappa([[2, 2], [2, 2]]) == pytest.approx(-1 / 3)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 2], [1, 1]])
    with pytest.raises(ValueError, match="shape"):
        fleiss_kappa([1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        fleiss_kappa([[3, -1], [1, 1]])


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(7, 10)
    assert (lo, hi) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_majority_rule():
    assert majority(["a", "a", "a", "b", "b"]) == "a"
    assert majority(["tie", "tie", "tie", "a", "b"]) == "tie"
    assert majority(["a", "a", "b", "b", "tie"]) == "none"
    assert majority(["a", "b"]) == "none"
    with pytest.raises(ValueError):
        majority([])


def test_question_stats_hand_computed():
    s = question_stats(HAND_VOTES)
    assert s["n_pairs"] == 4
    assert s["outcomes"] == {"a": 1, "b": 1, "tie": 1, "no_majority": 1}
    assert s["win_a"]["rate"] == 0.25 and s["win_b"]["rate"] == 0.25 and s["tie"]["rate"] == 0.5
    assert s["win_a"]["ci95"] == pytest.approx(list(wilson_interval(1, 4)))
    assert s["preference_a_decided"]["rate"] == 0.5 and s["preference_a_decided"]["n"] == 2
    # By hand: P_i = .4, 1, .2, .3 -> P = .475; p_j = .3, .45, .25 -> Pe = .355; (P - Pe) / (1 - Pe).
    assert s["fleiss_kappa"] == pytest.approx(0.12 / 0.645)
    assert (s["kappa_pairs"], s["kappa_raters"]) == (4, 5)
    assert s["agreement"]["complete"] == 0.25 and s["agreement"]["split"] == 0.75
    assert s["per_pair"] == {1: "a", 2: "b", 3: "none", 4: "tie"}


def test_question_stats_incomplete_pairs():
    votes = dict(HAND_VOTES)
    votes[5] = ["a", "a", "a"]  # an unfinished pair: counts for win rates, not for kappa (modal size 5)
    votes[6] = []  # unjudged: ignored
    s = question_stats(votes)
    assert s["n_pairs"] == 5 and s["outcomes"]["a"] == 2
    assert s["kappa_pairs"] == 4 and s["fleiss_kappa"] == pytest.approx(0.12 / 0.645)
    assert s["agreement"]["complete"] == pytest.approx(2 / 5)


def test_category_counts_rejects_unknown_label():
    np.testing.assert_array_equal(category_counts({1: ["a", "tie", "a"]}), [[2, 0, 1]])
    with pytest.raises(ValueError, match="left"):
        category_counts({1: ["left"]})
