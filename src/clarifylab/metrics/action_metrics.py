"""Action-level metrics (SPEC §6; ACT Table 2 "Macro F1"): how well predicted actions match gold ones."""

from __future__ import annotations

from collections.abc import Sequence

from clarifylab.data.schema import Action

# Fixed label order: a class that never occurs in the predictions (a policy that always answers)
# still enters the macro average with F1 = 0.
ACTION_LABELS = (Action.CLARIFY.value, Action.ANSWER.value)


def _labels(values: Sequence[Action | str], what: str) -> list[str]:
    try:
        return [Action(v).value for v in values]
    except ValueError as error:
        raise ValueError(
            f"action_metrics: {what} holds an unknown action ({error}); use one of {ACTION_LABELS}") from None


def action_metrics(gold: Sequence[Action | str], predicted: Sequence[Action | str]) -> dict[str, float | int]:
    """Accuracy, macro F1 over {clarify, answer}, and precision/recall/F1 of the clarify class.

    Args:
        gold: gold actions, one per decision point.
        predicted: predicted actions, aligned with ``gold``.

    Returns:
        ``accuracy``, ``macro_f1``, ``clarify_precision``, ``clarify_recall``, ``clarify_f1`` (fractions in
        [0, 1]; undefined ratios count as 0) and ``n``, the number of decision points.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    if len(gold) != len(predicted):
        raise ValueError(f"action_metrics: {len(gold)} gold actions but {len(predicted)} predictions")
    if not gold:
        raise ValueError("action_metrics: no decision points to score (empty gold/predicted)")
    y_true, y_pred = _labels(gold, "gold"), _labels(predicted, "predicted")
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=[Action.CLARIFY.value], average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(ACTION_LABELS), average="macro", zero_division=0)),
        "clarify_precision": float(precision[0]),
        "clarify_recall": float(recall[0]),
        "clarify_f1": float(f1[0]),
        "n": len(y_true),
    }
