"""STaR-GATE conversation simulation (Andukuri et al., 2024, §3; official experiments/star-gate/simulate):
the Questioner m_t, which never sees the persona, asks; the persona-conditioned Roleplayer answers.

Per (persona, task) pair: the number of question turns K is drawn ONCE, uniformly from ``1..max_turns``
(:func:`draw_turns`, seeded by ``(seed, iteration, pair id)``), so the pair's N conversations have equal length;
the Questioner samples N first questions (N copies of the prompt in one sampled batch), then each branch continues
with one sample per turn; every conversation ends with a Roleplayer answer: ``[u0, q1, a1, ..., qK, aK]``.

All live conversations of a round share one Questioner call and one Roleplayer call (batched through any
:class:`~clarifylab.backends.base.ChatBackend`: local transformers or an OpenAI-compatible endpoint).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.schema import Example
from clarifylab.env.persona_roleplayer import PersonaRoleplayer

log = logging.getLogger(__name__)


def draw_turns(pair_id: str, seed: int, iteration: int, max_turns: int = 3) -> int:
    """K for one pair: uniform on ``1..max_turns``, a pure function of ``(seed, iteration, pair_id)``
    (``random.Random`` seeded by a string: sha512, stable across processes and Python versions)."""
    return random.Random(f"star-gate:{seed}:{iteration}:{pair_id}").randint(1, max_turns)


@dataclass
class SimulatedConversation:
    """One simulated conversation (questioner's view, no system message) and what became of it."""

    pair_id: str
    branch: int
    turns: int
    messages: list[Message]
    score: float | None = None
    oracle_tokens: int | None = None
    selected: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"pair_id": self.pair_id, "branch": self.branch, "turns": self.turns, "messages": self.messages,
                "score": self.score, "oracle_tokens": self.oracle_tokens, "selected": self.selected, **self.meta}


def questioner_prompt(instruction: str | None, messages: Sequence[Message]) -> list[Message]:
    """The Questioner's input: its system instruction (``dataset.instruction``; None = none) and the conversation."""
    system = [{"role": "system", "content": instruction}] if instruction else []
    return system + [dict(m) for m in messages]


def simulate_conversations(examples: Sequence[Example], questioner: ChatBackend, roleplayer: PersonaRoleplayer,
                           n: int, turns: dict[str, int], params: SamplingParams, instruction: str | None,
                           progress: bool = True) -> list[SimulatedConversation]:
    """N conversations per example (pair), each with ``turns[example.id]`` question turns (module docstring).

    Args:
        examples: stargate Examples (``history[0]`` is the user's first turn; ``meta["persona"]``).
        questioner: m_t (sampled with ``params``: the paper's T 0.9, top_p 0.9).
        roleplayer: the persona Roleplayer (greedy).
        n: conversations per pair.
        turns: K per pair id (:func:`draw_turns`).
        params: the Questioner's sampling; its seed is offset per round (``seed + round``).
        instruction: the Questioner's system instruction.

    Returns:
        ``len(examples) * n`` conversations, pair-major (branches 0..n-1 of the first pair first).
    """
    conversations = [SimulatedConversation(pair_id=e.id, branch=b, turns=turns[e.id],
                                           messages=[{"role": "user", "content": e.history[0].content}])
                     for e in examples for b in range(n)]
    by_id = {e.id: e for e in examples}
    max_round = max(turns[e.id] for e in examples) if examples else 0
    for round_index in range(max_round):
        live = [c for c in conversations if c.turns > round_index]
        started = time.perf_counter()
        seed = None if params.seed is None else params.seed + round_index
        round_params = SamplingParams(max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                                      top_p=params.top_p, seed=seed)
        questions = questioner.complete([questioner_prompt(instruction, c.messages) for c in live], round_params)
        for conversation, question in zip(live, questions):
            conversation.messages.append({"role": "assistant", "content": question})
        answers = roleplayer.answer([by_id[c.pair_id].meta["persona"] for c in live],
                                    [c.messages[0]["content"] for c in live], [c.messages for c in live])
        for conversation, answer in zip(live, answers):
            conversation.messages.append({"role": "user", "content": answer})
        elapsed = max(time.perf_counter() - started, 1e-9)
        message = (f"[star-gate] round {round_index + 1}/{max_round}: {len(live)} questions + answers in "
                   f"{elapsed:.1f} s ({len(live) / elapsed:.2f} conversations/s)")
        log.info(message)
        if progress:
            print(message, flush=True)
    return conversations
