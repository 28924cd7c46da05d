"""Win-rate arithmetic on hand-made verdicts: single randomized order, both orders (win / loss / flip), the bootstrap,
verdict parsing, and a judge that always prefers position A."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clarifylab.methods.star_gate.win_rate import (
    both_order_outcome,
    bootstrap_ci,
    parse_verdict,
    randomized_positions,
    single_order_score,
    summarize,
    win_rates,
)


def item(turns, model_is_a, first, second):
    return {"turns": turns, "model_is_a": model_is_a, "verdict_model_first": first, "verdict_model_second": second}


def test_parse_verdict():
    assert [parse_verdict(t) for t in ("A", "B.", " b", "Response B is better", "Answer: A", "(A)")] == \
        ["A", "B", "B", "B", "A", "A"]
    assert [parse_verdict(t) for t in ("", "both A and B", "neither", "I think the second")] == [None] * 4


def test_outcomes_and_scores():
    assert single_order_score("A", True) == 1.0 and single_order_score("A", False) == 0.0
    assert single_order_score("B", False) == 1.0 and single_order_score(None, True) is None
    assert both_order_outcome("A", "B") == "win" and both_order_outcome("B", "A") == "loss"
    assert both_order_outcome("A", "A") == "flip" and both_order_outcome("B", "B") == "flip"
    assert both_order_outcome(None, "B") is None and both_order_outcome("A", None) is None


def test_randomized_positions_are_balanced_and_seeded():
    positions = randomized_positions(10, seed=3)
    assert sum(positions) == 5 and positions == randomized_positions(10, seed=3)
    assert positions != randomized_positions(10, seed=4) or positions != randomized_positions(10, seed=5)
    assert sum(randomized_positions(7, 0)) == 3


def test_hand_made_verdicts_exact():
    items = [
        item(1, True, "A", "B"),    # win; single order shows m_t as A, judge says A -> 1
        item(1, False, "A", "B"),   # win; single order shows m_t as B, judge (m_t second) says B -> 1
        item(2, True, "B", "A"),    # loss; single: judge says B while m_t is A -> 0
        item(2, False, "A", "A"),   # flip; single: m_t as B, judge says A -> 0
        item(3, True, "A", "A"),    # flip; single: m_t as A, says A -> 1
        item(3, True, None, "B"),   # unparsable first order: dropped from both; single (m_t as A) dropped too
    ]
    result = win_rates(items, samples=200, seed=0)
    assert result["single"]["win_rate"] == pytest.approx(3 / 5)
    assert (result["single"]["n"], result["single"]["dropped"]) == (5.0, 1.0)
    both = result["both"]
    assert (both["win"], both["loss"], both["flip"], both["n"], both["dropped"]) == (2.0, 1.0, 2.0, 5.0, 1.0)
    assert both["win_rate"] == pytest.approx((2 + 0.5 * 2) / 5) and both["strict_win_rate"] == pytest.approx(2 / 5)
    by = result["by_turns"]
    assert by["1"]["single"]["win_rate"] == 1.0 and by["1"]["both"]["win_rate"] == 1.0
    assert by["2"]["single"]["win_rate"] == 0.0 and by["2"]["both"]["win_rate"] == pytest.approx(0.25)
    assert by["3"]["single"]["win_rate"] == 1.0 and by["3"]["single"]["dropped"] == 1.0
    assert by["3"]["both"]["win_rate"] == 0.5 and by["3"]["both"]["n"] == 1.0


def test_bootstrap_is_exact_and_seeded():
    scores = [1.0, 0.0, 1.0, 0.5, 1.0]
    low, high = bootstrap_ci(scores, samples=500, seed=7)
    # the same computation by hand
    index = np.random.default_rng(7).integers(0, 5, size=(500, 5))
    means = np.asarray(scores)[index].mean(axis=1)
    assert (low, high) == (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    assert bootstrap_ci(scores, samples=500, seed=7) == (low, high)
    assert bootstrap_ci([1.0] * 4) == (1.0, 1.0) and bootstrap_ci([0.5, 0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert summarize([1.0, None, 0.0])["win_rate"] == 0.5


def test_a_judge_that_always_says_a_is_all_position_bias():
    n = 12
    positions = randomized_positions(n, seed=1)
    items = [item(1 + k % 3, positions[k], "A", "A") for k in range(n)]  # the judge always names position A
    result = win_rates(items, samples=100, seed=0)
    assert result["single"]["win_rate"] == 0.5  # exactly: m_t is shown as A for half of the items
    assert result["both"]["flip"] == n and result["both"]["win"] == result["both"]["loss"] == 0
    assert result["both"]["win_rate"] == 0.5 and result["both"]["strict_win_rate"] == 0.0
    assert (result["both"]["ci_low"], result["both"]["ci_high"]) == (0.5, 0.5)
