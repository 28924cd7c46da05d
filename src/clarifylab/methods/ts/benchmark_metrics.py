"""The teacher-student benchmark's metrics (Poelitz & McKenna 2025), as pure functions of per-item outcomes.

The benchmark is a set of **pairs**: an ablated task (one piece of needed information removed) and its original,
fully specified task. Per pair the model is run on

- the original task with the answer-only prompt -> ``original_correct``;
- the original and the ablated task with the may-ask prompt -> ``asked_original`` / ``asked_ablated``
  (the first response classified as a clarifying question by the heuristic action classifier);
- the clarification scenario on the ablated task -> ``clarification_correct``: the may-ask prompt; an answer is
  scored as it is; a clarifying question gets the user's reply (the missing information when the judge says it
  targets it, else a refusal to say more) and the model's next response is scored (a second question scores 0);
- the correction scenario on the ablated task -> ``correction_correct``: the answer-only prompt; a correct answer
  counts as it is, a wrong one gets the user's correction (the missing information) and the next response is scored.

"Correct" = H >= the task's success threshold (``training.task_success``). Over ``n`` pairs:

    AccOr = sum(original_correct) / n        AccCl = sum(clarification_correct) / n
    AccCo = sum(correction_correct) / n
    clarification precision = TP / (TP + FP)   (0 when the model never asks)
    clarification recall    = TP / n
    with TP = sum(asked_ablated) (asked where information is missing), FP = sum(asked_original) (asked where none is).

Each pair counts once per strategy; an original shared by several strategies' pairs counts once in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairOutcome:
    """What happened on one (original, ablated) pair (module docstring)."""

    strategy: str
    original_correct: bool
    asked_original: bool
    asked_ablated: bool
    targeted: bool
    clarification_correct: bool
    correction_correct: bool


def ts_metrics(outcomes: Sequence[PairOutcome]) -> dict[str, float | int]:
    """``acc_or``, ``acc_cl``, ``acc_co``, ``clarify_precision``, ``clarify_recall``, ``targeted_rate`` (share of
    the model's questions on ablated tasks that the judge found targeted; 0 without questions) and ``n_pairs``
    (module docstring; all rates 0 for no pairs)."""
    n = len(outcomes)
    tp = sum(o.asked_ablated for o in outcomes)
    fp = sum(o.asked_original for o in outcomes)

    def rate(count: int, total: int) -> float:
        return count / total if total else 0.0

    return {"n_pairs": n, "acc_or": rate(sum(o.original_correct for o in outcomes), n),
            "acc_cl": rate(sum(o.clarification_correct for o in outcomes), n),
            "acc_co": rate(sum(o.correction_correct for o in outcomes), n),
            "clarify_precision": rate(tp, tp + fp), "clarify_recall": rate(tp, n),
            "targeted_rate": rate(sum(o.asked_ablated and o.targeted for o in outcomes), tp)}


def metrics_by_strategy(outcomes: Sequence[PairOutcome]) -> dict[str, dict[str, float | int]]:
    """:func:`ts_metrics` per strategy (in first-seen order) and over ``all``."""
    strategies = list(dict.fromkeys(o.strategy for o in outcomes))
    rows = {s: ts_metrics([o for o in outcomes if o.strategy == s]) for s in strategies}
    rows["all"] = ts_metrics(outcomes)
    return rows
