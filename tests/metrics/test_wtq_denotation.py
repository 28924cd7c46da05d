"""WTQ denotation accuracy on hand-checked cases, and the wtq/tatqa task heuristics."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.metrics.task_heuristics import heuristic_for
from clarifylab.metrics.wtq_denotation import denotation_match, split_values


@pytest.mark.parametrize(("prediction", "targets", "expected"), [
    ("Smith, John", ["Smith, John"], 1.0),          # one target: the comma stays inside the value
    ("1,000", ["1000"], 1.0),                        # numbers compare as numbers
    ("3.0", ["3"], 1.0),
    ("The Beatles.", ["the beatles"], 1.0),          # normalized: case, punctuation, article
    ("Paris, London", ["London", "Paris"], 1.0),     # a set: any order
    ("Paris | London", ["London", "Paris"], 1.0),
    ("Paris", ["London", "Paris"], 0.0),             # one value short
    ("Paris, London, Rome", ["London", "Paris"], 0.0),
    ("Paris, Paris", ["London", "Paris"], 0.0),      # one-to-one
    ("4", ["5"], 0.0),
    # A target value holding ", " (the rendered gold joins values with ", " too): cut-and-regroup finds it.
    ("March 21, 1964, May 2, 1965", ["March 21, 1964", "May 2, 1965"], 1.0),
    ("May 2, 1965 | March 21, 1964", ["March 21, 1964", "May 2, 1965"], 1.0),
    ("The Royal School, Armagh, Portora Royal School", ["The Royal School, Armagh", "Portora Royal School"], 1.0),
    ("March 21, 1964, May 2", ["March 21, 1964", "May 2, 1965"], 0.0),
    ("March 21, 1964", ["March 21, 1964"], 1.0),
    ("1, 1, 1, 2", ["1", "1", "1"], 0.0),             # repeated values: one-to-one, no piece left over
])
def test_denotation_match(prediction, targets, expected):
    assert denotation_match(prediction, targets) == expected


def test_split_values_and_empty_targets():
    assert split_values(" a ; b|c, d ", 4) == ["a", "b", "c", "d"]
    assert split_values("a, b", 1) == ["a, b"]
    with pytest.raises(ValueError, match="non-empty list of values"):
        denotation_match("x", [])


def _example(task, goal, meta):
    return Example(id="e", task=task, context="", history=[Turn("user", "q?")], response=goal, action=Action.ANSWER,
                   goal=[goal], meta=meta)


def test_wtq_heuristic_scores_against_every_target_value():
    example = _example("wtq", "Paris, London", {"target_values": ["Paris", "London"]})
    scores = heuristic_for("wtq").score(["London, Paris", "Paris"], [example.goal] * 2, [example] * 2)
    assert scores == [1.0, 0.0]


def test_tatqa_uses_the_pacific_drop_f1():
    example = _example("tatqa", "12.6 million", {"goal_answer": "12.6", "goal_scale": "million",
                                                 "goal_answer_type": "span"})
    heuristic = heuristic_for("tatqa")
    assert heuristic.name == "drop_f1"
    assert heuristic.score(["12.6 million", "13 million"], [example.goal] * 2, [example] * 2) == [1.0, 0.0]


def test_wtq_heuristic_scores_the_rendered_gold_of_comma_values_as_correct():
    # The loader renders ["March 21, 1964", "May 2, 1965"] as "March 21, 1964, May 2, 1965"; cutting it at every
    # ", " (4 pieces for 2 values) used to score the gold 0 against itself.
    example = _example("wtq", "March 21, 1964, May 2, 1965", {"target_values": ["March 21, 1964", "May 2, 1965"]})
    scores = heuristic_for("wtq").score([example.response, "March 21, 1964"], [example.goal] * 2, [example] * 2)
    assert scores == [1.0, 0.0]
