"""Columns of the underspecified multi-turn evaluation (Cook et al., §4; sharded tasks of Laban et al., 2025).

A :class:`ShardedTrace` records, per student turn ``t`` (1-based): its action (answer attempt or question),
whether an attempt was correct, and how many shards the student had seen before it. Definitions:

- **success within budget b**: some attempt at a turn ``<= b`` was correct (:func:`success_by_budget`);
- **premature answer attempt**: an answer attempt made while fewer than all shards had been revealed,
  i.e. before the information the problem needs was in the conversation, right or wrong
  (:func:`premature_attempts`); reported per dialogue;
- **question rate**: questions / student turns over all dialogues (:func:`question_rate`);
- **answer log-prob at turn t**: ``log pi(gold answer | dialogue up to the user turn before student turn t)``,
  averaged over the dialogues that reached turn ``t`` (computed by the runner with the local model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clarifylab.data.schema import Action


@dataclass
class ShardedTrace:
    """One evaluated dialogue.

    Attributes:
        n_shards: pieces the problem was cut into.
        actions: per student turn, :class:`Action` (``ANSWER`` = an answer attempt).
        correct: per student turn, whether it was a correct answer attempt.
        revealed: per student turn, how many shards had been revealed before it.
        answer_logps: per student turn, the log-prob of the gold answer at that point (None: not computed).
    """

    n_shards: int
    actions: list[Action] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    revealed: list[int] = field(default_factory=list)
    answer_logps: list[float | None] = field(default_factory=list)

    @property
    def success_turn(self) -> int | None:
        """The first student turn (1-based) with a correct attempt, or None."""
        return next((t + 1 for t, ok in enumerate(self.correct) if ok), None)


def premature_attempts(trace: ShardedTrace) -> int:
    """Answer attempts made before every shard had been revealed."""
    return sum(a is Action.ANSWER and seen < trace.n_shards for a, seen in zip(trace.actions, trace.revealed,
                                                                             strict=True))


def success_by_budget(traces: Sequence[ShardedTrace], budgets: Sequence[int]) -> dict[int, float]:
    """Budget -> share of dialogues solved within that many student turns."""
    n = max(len(traces), 1)
    return {b: sum(t.success_turn is not None and t.success_turn <= b for t in traces) / n for b in budgets}


def question_rate(traces: Sequence[ShardedTrace]) -> float:
    """Questions / student turns (NaN-free: 0.0 without turns)."""
    turns = sum(len(t.actions) for t in traces)
    return sum(a is Action.CLARIFY for t in traces for a in t.actions) / turns if turns else 0.0


def answer_logp_by_turn(traces: Sequence[ShardedTrace], max_turns: int) -> dict[int, float | None]:
    """Turn -> mean gold-answer log-prob over dialogues that reached it (None when no value)."""
    out: dict[int, float | None] = {}
    for turn in range(1, max_turns + 1):
        values = [t.answer_logps[turn - 1] for t in traces
                  if len(t.answer_logps) >= turn and t.answer_logps[turn - 1] is not None]
        out[turn] = sum(values) / len(values) if values else None
    return out


def summarize_sharded(traces: Sequence[ShardedTrace], budgets: Sequence[int], max_turns: int) -> dict[str, Any]:
    """The metrics of a sharded evaluation, flat keys (``success_at_<b>``, ``answer_logp_t<k>``)."""
    n = max(len(traces), 1)
    premature = [premature_attempts(t) for t in traces]
    metrics: dict[str, Any] = {
        "n_dialogues": len(traces),
        "success": success_by_budget(traces, [max_turns])[max_turns],
        **{f"success_at_{b}": v for b, v in success_by_budget(traces, budgets).items()},
        "premature_per_dialogue": sum(premature) / n,
        "premature_any_rate": sum(p > 0 for p in premature) / n,
        "question_rate": question_rate(traces),
        "mean_student_turns": sum(len(t.actions) for t in traces) / n,
    }
    metrics.update({f"answer_logp_t{k}": v for k, v in answer_logp_by_turn(traces, max_turns).items()})
    return metrics
