"""DROP F1 (official and PACIFIC/TAT-QA variants) on hand-computed cases."""

from __future__ import annotations

import pytest

from clarifylab.metrics.drop_f1 import (
    drop_em_f1,
    drop_em_f1_max,
    is_tatqa_number,
    normalize_drop_answer,
    normalize_tatqa_answer,
    scale_factor,
    tatqa_em_f1,
    tatqa_number_value,
)

# ----------------------------------------------------------------------------------- official DROP


def test_normalization_lowercases_splits_hyphens_drops_articles_and_normalizes_numbers():
    assert normalize_drop_answer("The 1,000-yard run.") == "1000.0 yard run"
    assert normalize_drop_answer("An  apple, a pear") == "apple pear"


@pytest.mark.parametrize("prediction", ["1000", "1,000", "1000.0", "1000.00"])
def test_number_formats_match_exactly(prediction):
    assert drop_em_f1(prediction, "1000") == (1.0, 1.0)


def test_hyphens_split_tokens_and_articles_are_ignored():
    assert drop_em_f1("well-known author", "well known author") == (1.0, 1.0)
    assert drop_em_f1("the Eiffel Tower", "Eiffel Tower") == (1.0, 1.0)


def test_bag_f1_is_rounded_to_two_decimals():
    # P = 1/2, R = 1 -> F1 = 2/3 -> 0.67
    assert drop_em_f1("red blue", "red") == (0.0, 0.67)
    # P = 1/5, R = 1/2 -> F1 = 0.2/0.7 = 0.2857 -> 0.29
    assert drop_em_f1("red blue green yellow black", "red white") == (0.0, 0.29)


def test_number_match_rule_zeroes_a_span_whose_gold_numbers_are_missing():
    # Without the rule the bags {6.0, touchdowns} / {5.0, touchdowns} would give F1 0.5.
    assert drop_em_f1("6 touchdowns", "5 touchdowns") == (0.0, 0.0)
    # A matching number keeps the ordinary bag F1: P = R = 1/2.
    assert drop_em_f1("5 yards", "5 touchdowns") == (0.0, 0.5)


def test_multi_span_alignment_is_optimal_not_greedy():
    # Pairwise F1 (rows gold, cols pred):
    #   "red green blue" vs "red" = 0.5, vs "green black" = 0.4
    #   "red"            vs "red" = 1.0, vs "green black" = 0.0
    # Greedy (first gold takes its best) = (0.5 + 0.0) / 2 = 0.25; optimal = (0.4 + 1.0) / 2 = 0.7.
    assert drop_em_f1(["red", "green black"], ["red green blue", "red"]) == (0.0, 0.7)


def test_multi_span_mean_is_over_the_larger_span_count_and_em_ignores_order():
    assert drop_em_f1("red", ["red", "blue"]) == (0.0, 0.5)
    assert drop_em_f1(["red", "blue", "green"], ["blue", "red"]) == (0.0, 0.67)
    assert drop_em_f1(["blue", "red"], ["red", "blue"]) == (1.0, 1.0)


def test_max_over_golds_takes_em_and_f1_separately_and_skips_blank_golds():
    # vs "red": 0; vs ["blue", "green"]: mean(0, 1) = 0.5.
    assert drop_em_f1_max("green", ["red", ["blue", "green"]]) == (0.0, 0.5)
    assert drop_em_f1_max("green", ["green field", "Green"]) == (1.0, 1.0)
    assert drop_em_f1("", "") == (1.0, 1.0)  # an empty pair is a trivial match ...
    assert drop_em_f1_max("", ["", "red"]) == (0.0, 0.0)  # ... so blank golds are skipped


def test_official_quirk_currency_token_loses_its_decimal_point():
    # "$1.2" does not parse as a float, so all punctuation goes: "12" -> "12.0" (as the official script).
    assert normalize_drop_answer("$1.2") == "12.0"
    assert drop_em_f1("$1.2", "1.2") == (0.0, 0.0)


@pytest.mark.parametrize("golds", [[], "red"])
def test_max_over_golds_rejects_a_non_list(golds):
    with pytest.raises(ValueError, match="golds"):
        drop_em_f1_max("red", golds)


# ----------------------------------------------------------------------------------- PACIFIC / TAT-QA


def test_number_parsing_with_scales_parentheses_and_percent():
    assert scale_factor("million") == 1e6 and scale_factor("percent") == 0.01 and scale_factor("") == 1.0
    assert tatqa_number_value("$1.2 million") == 1_200_000.0
    assert tatqa_number_value("(134)") == -134.0
    assert tatqa_number_value("(1,234)") == -1234.0
    assert tatqa_number_value("12%") == 0.12
    assert is_tatqa_number("$1,496.5") and is_tatqa_number("12 percent")
    assert not is_tatqa_number("2019 revenue") and not is_tatqa_number("inf")
    assert normalize_tatqa_answer("Revenue was $1.2") == "revenue was 1.2"


def test_scale_word_in_prediction_matches_gold_scale():
    assert tatqa_em_f1("$1.2 million", ["1.2"], gold_scale="million") == (1.0, 1.0)
    assert tatqa_em_f1("1.2", ["1.2"], gold_scale="million", pred_scale="million") == (1.0, 1.0)
    # Without the gold scale, 1200000.0000 vs 1.2000: no overlap.
    assert tatqa_em_f1("$1.2 million", ["1.2"]) == (0.0, 0.0)
    assert tatqa_em_f1("$1,496.5 million", ["$1,496.5"], gold_scale="million") == (1.0, 1.0)


@pytest.mark.parametrize("prediction", ["(134)", "-134", "(134.00)"])
def test_parenthesised_negative_equals_minus(prediction):
    assert tatqa_em_f1(prediction, "-134", answer_type="arithmetic") == (1.0, 1.0)


def test_percent_equivalences():
    assert tatqa_em_f1("12%", "0.12") == (1.0, 1.0)
    assert tatqa_em_f1("12%", 12, gold_scale="percent") == (1.0, 1.0)
    assert tatqa_em_f1("0.12", 12, gold_scale="percent") == (1.0, 1.0)
    assert tatqa_em_f1("12", 12, gold_scale="percent", pred_scale="percent") == (1.0, 1.0)
    # A bare 12 with no scale is 12.0000, not 0.1200.
    assert tatqa_em_f1("12", 12, gold_scale="percent") == (0.0, 0.0)


def test_unrounded_ratio_matches_a_percent_gold():
    # Rounded candidate: round(0.2342, 2) -> "0.2300" (no match); unrounded "0.2342" == 23.42 %.
    assert tatqa_em_f1("0.2342", 23.42, gold_scale="percent", answer_type="arithmetic") == (1.0, 1.0)


def test_multi_span_answers_become_one_bag():
    gold = ["fixed-price type", "cost-plus type", "time-and-material type"]
    # Gold bag {fixedprice, costplus, timeandmaterial, type}; predicted {fixedprice, type, and, costplus}:
    # P = R = 3/4.
    assert tatqa_em_f1("fixed-price type and cost-plus", gold) == (0.0, 0.75)
    assert tatqa_em_f1(["57,768", "73,260"], ["73,260", "57,768"], "thousand", pred_scale="thousand") == (1.0, 1.0)
    # One of two numbers: P = 1, R = 1/2 -> 0.67.
    assert tatqa_em_f1("73,260", ["73,260", "57,768"], "thousand", pred_scale="thousand") == (0.0, 0.67)


def test_no_number_match_rule_and_count_scores_f1_as_em():
    assert tatqa_em_f1("6 touchdowns", ["5 touchdowns"]) == (0.0, 0.5)
    # {4.0, items} vs {4.0}: F1 = 2/3 as a span, but a count answer's F1 is its EM.
    assert tatqa_em_f1("4 items", "4") == (0.0, 0.67)
    assert tatqa_em_f1("4 items", "4", answer_type="count") == (0.0, 0.0)
    assert tatqa_em_f1("4", "4.0", answer_type="count") == (1.0, 1.0)


def test_empty_prediction_or_gold_scores_zero_and_unknown_scale_fails():
    assert tatqa_em_f1(None, ["1.2"]) == (0.0, 0.0)
    assert tatqa_em_f1("  ", ["1.2"]) == (0.0, 0.0)
    assert tatqa_em_f1("1.2", []) == (0.0, 0.0)
    with pytest.raises(ValueError, match="gold_scale 'lakh'"):
        tatqa_em_f1("1.2", ["1.2"], gold_scale="lakh")


# ----------------------------------------------------------------------------------- golds that must match themselves


@pytest.mark.parametrize("prediction", ["$15.5 million", "15.5 million", "$15,500,000"])
def test_a_span_stating_its_scale_word_is_not_scaled_twice(prediction):
    # Gold "$15.5 million" with scale "million" used to become 15.5e6 * 1e6 = "15500000000000.0000".
    gold = ["$15.5 million"]
    assert tatqa_em_f1(prediction, gold, gold_scale="million") == (1.0, 1.0)
    assert tatqa_em_f1("15.5", gold, gold_scale="million", pred_scale="million") == (1.0, 1.0)
    assert tatqa_em_f1("$15.5", gold, gold_scale="million") == (0.0, 0.0)  # 15.5 != 15,500,000


@pytest.mark.parametrize("prediction", ["(59.9)%", "-59.9%", "-0.599"])
def test_parenthesised_percent_is_a_negative_percent(prediction):
    # "(59.9)%" is -0.599 ("-0.5990"); it used to read -59.9, so "-59.9%" (-0.5990) scored 0.
    assert tatqa_number_value("(59.9)%") == -0.599
    assert tatqa_em_f1(prediction, ["(59.9)%"], gold_scale="percent") == (1.0, 1.0)
    # Gold span "(59.9)" with scale percent is "-0.5990"; the loader renders it "(59.9)%", which must match it.
    assert tatqa_em_f1(prediction, ["(59.9)"], gold_scale="percent") == (1.0, 1.0)
    assert tatqa_em_f1("59.9%", ["(59.9)%"], gold_scale="percent") == (0.0, 0.0)


def test_minus_zero_equals_zero():
    # str(-0.0) == "-0.0" used to differ from "0.0".
    assert tatqa_number_value("-0") == 0.0 and str(tatqa_number_value("-0")) == "0.0"
    assert normalize_tatqa_answer("-0.0000") == "0.0"
    assert tatqa_em_f1("-0", "0", answer_type="arithmetic") == (1.0, 1.0)
    assert tatqa_em_f1("0", ["-0.001"]) == (1.0, 1.0)  # the gold rounds to -0.00
    assert drop_em_f1("-0", "0") == (1.0, 1.0)  # official DROP splits on "-": already equal
