"""HeuristicActionClassifier on hand-written responses."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action
from clarifylab.env.action_classifier import (
    ActionClassifier,
    HeuristicActionClassifier,
    classify_response,
    has_question_shape,
    is_asking,
    is_title,
)

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
    # Gold answers that open with an interrogative/auxiliary word but are no questions (former misfires
    # on Abg-CoQA and PACIFIC gold responses).
    ("May 1954", A),
    ("27 May 2019", A),
    ("Will and his friends", A),
    ("When it was almost dark", A),
    ("Did not", A),
    ("What Broke My Father's Heart", A),
    ("when revenue is recognized prior to invoicing", A),
    ("where future recoverability is uncertain.", A),
    # Unpunctuated questions keep counting: inversion, wh + auxiliary, second person, bare wh-phrase.
    ("What year", C),
    ("What year or after what event", C),
    ("Is it revenue or profit", C),
    ("Did the company report it for 2019 or 2020", C),
    ("What is the segment", C),
    ("Which year do you mean: 2019 or", C),  # a generation cut off mid-sentence
    ("Didn\u2019t you mean the 2019 figure", C),
    ("Which one you need", C),
    ("How many", C),
])
def test_classify_response(response, expected):
    assert classify_response(response) is expected


@pytest.mark.parametrize("sentence, expected", [
    ("When it was almost dark", False),     # wh-word + clause, no inversion
    ("When was it dark", True),              # wh-word + auxiliary
    ("when revenue is the largest item", False),  # "is the" inside a sentence is statement order
    ("Is the revenue for 2019", True),       # opening auxiliary + determiner
    ("Have a look at the table", False),     # opening auxiliary + indefinite article: not a question
    ("What Broke My Father's Heart?", True),  # a question mark overrides the title rule
    ("Where war had reigned.", False),       # a full stop ends a statement
])
def test_is_asking_rules(sentence, expected):
    assert is_asking(sentence) is expected


def test_question_shape_and_title_helpers():
    assert has_question_shape([]) is False
    assert has_question_shape(["revenue", "or", "profit"]) is False  # no opener
    assert has_question_shape(["which"]) is True  # a bare wh-word
    assert is_title(["What", "Broke", "My", "Father's", "Heart"]) is True
    assert is_title(["The", "Bank", "of", "England"]) is True
    assert is_title(["What", "year"]) is False  # too short and not capitalised
    assert is_title(["what", "Broke", "Heart"]) is False  # first word lower-case


def test_classifier_batch_and_protocol():
    classifier = HeuristicActionClassifier()
    assert isinstance(classifier, ActionClassifier)
    assert classifier.classify(["Which one?", "42"]) == [C, A]
    with pytest.raises(ValueError, match="2 responses but 1 examples"):
        classifier.classify(["Which one?", "42"], examples=[object()])
