"""action_metrics against hand-computed confusion matrices."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action
from clarifylab.metrics.action_metrics import action_metrics


def test_mixed_predictions():
    # clarify: TP 1, FP 1, FN 1 -> P = R = F1 = 1/2; answer: TP 2, FP 1, FN 1 -> P = R = F1 = 2/3.
    gold = ["clarify", "clarify", "answer", "answer", "answer"]
    predicted = [Action.CLARIFY, Action.ANSWER, Action.ANSWER, Action.CLARIFY, Action.ANSWER]
    metrics = action_metrics(gold, predicted)
    assert metrics == pytest.approx({"accuracy": 0.6, "macro_f1": (0.5 + 2 / 3) / 2, "clarify_precision": 0.5,
                                     "clarify_recall": 0.5, "clarify_f1": 0.5, "n": 5})


def test_policy_that_never_clarifies_counts_clarify_f1_as_zero():
    # answer: P = 2/4, R = 1, F1 = 2/3; clarify: TP 0, FN 2, never predicted -> P = 0/0 undefined, R = 0,
    # F1 = 2TP / (2TP + FP + FN) = 0; macro = (0 + 2/3) / 2.
    metrics = action_metrics(["clarify", "answer", "answer", "clarify"], ["answer"] * 4)
    assert metrics == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3), "clarify_precision": None,
                       "clarify_recall": 0.0, "clarify_f1": 0.0, "n": 4}


def test_no_gold_and_no_predicted_clarify_leaves_clarify_rates_undefined():
    # clarify occurs nowhere: P = 0/0, R = 0/0, F1 undefined -> None; macro F1 = F1(answer) = 1, not (0 + 1) / 2.
    metrics = action_metrics(["answer"] * 3, ["answer"] * 3)
    assert metrics == {"accuracy": 1.0, "macro_f1": 1.0, "clarify_precision": None, "clarify_recall": None,
                       "clarify_f1": None, "n": 3}


def test_clarify_predicted_but_never_gold():
    # clarify: TP 0, FP 1, FN 0 -> P = 0, R = 0/0 undefined, F1 = 0; answer: TP 1, FN 1 -> P = 1, R = 1/2,
    # F1 = 2/3; macro = (0 + 2/3) / 2.
    metrics = action_metrics(["answer", "answer"], ["clarify", "answer"])
    assert metrics == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3), "clarify_precision": 0.0,
                       "clarify_recall": None, "clarify_f1": 0.0, "n": 2}


def test_perfect_single_class():
    metrics = action_metrics(["clarify", "clarify"], ["clarify", "clarify"])
    # answer class absent from gold and predictions: undefined, left out of the macro mean (was 0, halving it).
    assert metrics["accuracy"] == 1.0 and metrics["clarify_f1"] == 1.0 and metrics["macro_f1"] == 1.0


@pytest.mark.parametrize("gold, predicted, message", [
    (["clarify"], ["clarify", "answer"], "1 gold actions but 2"),
    ([], [], "no decision points"),
    (["clarify"], ["refuse"], "unknown action"),
])
def test_bad_inputs(gold, predicted, message):
    with pytest.raises(ValueError, match=message):
        action_metrics(gold, predicted)
