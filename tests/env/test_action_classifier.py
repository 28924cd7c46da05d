"""HeuristicActionClassifier on hand-written responses."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action
from clarifylab.env.action_classifier import ActionClassifier, HeuristicActionClassifier, classify_response

C, A = Action.CLARIFY, Action.ANSWER


@pytest.mark.parametrize("response, expected", [
    ("The answer is 12.5.", A),
    ("Which year do you mean?", C),
    ("12.5", A),
    ("Do you mean 2020 or 2021", C),
    ("Could you please specify the year.", C),
    ("Sure! Which metric: revenue or profit?", C),
    ("It is unclear which year you mean. Could you specify?", C),
    ("Please specify the year: 2020 or 2021.", C),
    ("Revenue was 12.5 in 2020.", A),
    ("What you asked for is 12.5.", A),
    ("In 2020 revenue was 12.5. Did you mean 2021?", A),  # states a value: a (hedged) answer
    ("Which year? The answer is 12.5 for 2020.", A),
    ("SELECT name FROM singer WHERE country = '?'", A),
    ("Apple", A),
    ("", A),
])
def test_classify_response(response, expected):
    assert classify_response(response) is expected


def test_classifier_batch_and_protocol():
    classifier = HeuristicActionClassifier()
    assert isinstance(classifier, ActionClassifier)
    assert classifier.classify(["Which one?", "42"]) == [C, A]
    with pytest.raises(ValueError, match="2 responses but 1 examples"):
        classifier.classify(["Which one?", "42"], examples=[object()])
