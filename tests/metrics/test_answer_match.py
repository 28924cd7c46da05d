"""normalize_answer / exact_match on hand-written cases."""

from __future__ import annotations

import pytest

from clarifylab.metrics.answer_match import exact_match, last_number, normalize_answer, parse_number


def test_normalize_answer():
    assert normalize_answer("  The  Apple, Inc.! ") == "apple inc"
    assert normalize_answer("An answer") == "answer"


@pytest.mark.parametrize("prediction, gold, expected", [
    ("The answer is 12.50.", "12.5", 1.0),
    ("-3.25", "-3.25", 1.0),
    ("1,000", "1000", 1.0),
    ("It fell by -3.25 million.", "-3.25", 1.0),
    ("12.5%", "12.5", 1.0),
    ("\u22124", "-4", 1.0),  # unicode minus sign
    ("12.51", "12.5", 0.0),
    ("3.25", "-3.25", 0.0),
    ("In 2020 it was 7.", "2020", 0.0),  # the last number counts
    ("2019-2020", "2020", 1.0),  # a range's hyphen is not a minus sign
    ("no idea", "12.5", 0.0),
    ("the Apple.", "apple", 1.0),
    ("apple pie", "apple", 0.0),
])
def test_exact_match(prediction, gold, expected):
    assert exact_match(prediction, [gold]) == expected


def test_any_gold_matches():
    assert exact_match("Paris", ["London", "paris"]) == 1.0
    with pytest.raises(ValueError, match="no gold"):
        exact_match("Paris", [])


def test_number_parsing():
    assert parse_number("$1,234.5") == 1234.5 and parse_number("12 apples") is None
    assert last_number("between 1,000 and 2,000.25") == 2000.25 and last_number("none") is None
