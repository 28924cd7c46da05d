"""Top-k selection and the training examples of one STaR-GATE iteration (Andukuri et al., 2024, §3).

Selection keeps, per (persona, task) pair, the k conversations with the highest m0 oracle log-prob (k = 1 in the
paper; ties broken by the lower branch index). Response regularization: the training example ends with an answer
after the selected conversation, written by m_t itself (greedy, ``regularization=self``: the paper's KL term
approximated by SFT on samples of the previous model), the oracle's answer (``oracle``: the paper's "gold response"
ablation) or nothing (``none``: the example ends with the last question).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.errors import ConfigError
from clarifylab.methods.star_gate.oracle_logprob import answer_context
from clarifylab.methods.star_gate.simulate import SimulatedConversation

REGULARIZATION = ("self", "oracle", "none")


def select_top_k(conversations: Sequence[SimulatedConversation], k: int = 1) -> list[SimulatedConversation]:
    """Mark and return the top-``k`` scored conversations of each pair (pair order kept; ties: lower branch)."""
    if k < 1:
        raise ConfigError(f"trainer.top_k={k} must be >= 1")
    by_pair: dict[str, list[SimulatedConversation]] = {}
    for conversation in conversations:
        if conversation.score is None:
            raise ValueError(f"conversation {conversation.pair_id}#{conversation.branch} has no score")
        by_pair.setdefault(conversation.pair_id, []).append(conversation)
    selected = []
    for group in by_pair.values():
        ranked = sorted(group, key=lambda c: (-c.score, c.branch))
        for conversation in ranked[:k]:
            conversation.selected = True
            selected.append(conversation)
    return selected


def training_example(conversation: SimulatedConversation, source: Example, regularization: str,
                     final_answer: str | None = None) -> Example:
    """The SFT Example of a selected conversation (its assistant turns are the training targets).

    ``self`` / ``oracle``: history = the conversation with the task repeated after the last answer, response = the
    final answer (m_t's own, or ``source.response``). ``none``: history = the conversation up to the last question,
    response = that question.
    """
    if regularization not in REGULARIZATION:
        raise ConfigError(f"trainer.regularization={regularization!r} is not one of {list(REGULARIZATION)}")
    task = source.meta["task"]
    if regularization == "none":
        history, response = conversation.messages[:-2], conversation.messages[-2]["content"]
    else:
        history = answer_context(conversation.messages, task)
        response = final_answer if regularization == "self" else source.response
        if response is None:
            raise ValueError("regularization=self needs m_t's final answer")
    return Example(id=f"{conversation.pair_id}#{conversation.branch}", task=source.task, context="",
                   history=[Turn(m["role"], m["content"]) for m in history], response=response,
                   action=Action.ANSWER, goal=list(source.goal),
                   meta={**source.meta, "branch": conversation.branch, "turns": conversation.turns,
                         "score": conversation.score, "regularization": regularization})


def score_summary(conversations: Sequence[SimulatedConversation]) -> dict[str, float]:
    """Mean summed oracle log-prob (and mean per oracle token) over all and over the selected conversations."""
    def mean(values: Sequence[float]) -> float:
        return float(sum(values) / len(values)) if values else float("nan")

    chosen = [c for c in conversations if c.selected]
    return {"logprob_all": mean([c.score for c in conversations]),
            "logprob_selected": mean([c.score for c in chosen]),
            "logprob_per_token_all": mean([c.score / c.oracle_tokens for c in conversations]),
            "logprob_per_token_selected": mean([c.score / c.oracle_tokens for c in chosen]),
            "conversations": float(len(conversations)), "selected": float(len(chosen))}


def turn_counts(turns: Mapping[str, int]) -> dict[str, int]:
    """How many pairs got each K: ``{"1": .., "2": .., "3": ..}``."""
    counts: dict[str, int] = {}
    for k in turns.values():
        counts[str(k)] = counts.get(str(k), 0) + 1
    return dict(sorted(counts.items()))
