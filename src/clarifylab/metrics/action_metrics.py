"""Action-level metrics (SPEC §6; ACT Table 2 "Macro F1"): how well predicted actions match gold ones.

Undefined rates are ``None``, never a number: clarify precision TP / (TP + FP) when no decision point is
predicted clarify, clarify recall TP / (TP + FN) when none is gold clarify, and a class's F1 when the
class occurs neither in the gold nor in the predicted actions. Macro F1 is the mean F1 over the classes
that are defined (sklearn's ``zero_division=np.nan``): a class that occurs in the gold or the predictions
but is never right enters with F1 = 0 (a policy that always answers on data with clarify examples), a
class that occurs in neither is left out (all-answer data answered correctly: macro F1 = 1, not 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from clarifylab.data.schema import Action

ACTION_LABELS = (Action.CLARIFY.value, Action.ANSWER.value)
"""The classes of the macro average, in a fixed order."""


def _labels(values: Sequence[Action | str], what: str) -> list[str]:
    try:
        return [Action(v).value for v in values]
    except ValueError as error:
        raise ValueError(
            f"action_metrics: {what} holds an unknown action ({error}); use one of {ACTION_LABELS}") from None


def _defined(value: float) -> float | None:
    """``value`` as a float, ``None`` when it is NaN (an undefined ratio)."""
    return None if math.isnan(value) else float(value)


def action_metrics(gold: Sequence[Action | str],
                   predicted: Sequence[Action | str]) -> dict[str, float | int | None]:
    """Accuracy, macro F1 over {clarify, answer}, and precision/recall/F1 of the clarify class.

    Args:
        gold: gold actions, one per decision point.
        predicted: predicted actions, aligned with ``gold``.

    Returns:
        ``accuracy``, ``macro_f1`` (over the defined classes), ``clarify_precision``, ``clarify_recall``,
        ``clarify_f1`` (fractions in [0, 1]; ``None`` where undefined, see the module docstring) and ``n``,
        the number of decision points.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"action_metrics: {len(gold)} gold actions but {len(predicted)} predictions")
    if not gold:
        raise ValueError("action_metrics: no decision points to score (empty gold/predicted)")
    y_true, y_pred = _labels(gold, "gold"), _labels(predicted, "predicted")
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=[Action.CLARIFY.value], average=None, zero_division=np.nan)
    macro_f1 = f1_score(y_true, y_pred, labels=list(ACTION_LABELS), average="macro", zero_division=np.nan)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": _defined(macro_f1),
        "clarify_precision": _defined(precision[0]),
        "clarify_recall": _defined(recall[0]),
        "clarify_f1": _defined(f1[0]),
        "n": len(y_true),
    }
