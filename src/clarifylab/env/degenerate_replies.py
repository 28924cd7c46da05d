"""Degenerate user-simulator replies: copies instead of answers.

A simulated user is meant to answer the assistant's clarifying question with the information it
lacks. A small model playing the user (the bundled SmolLM2-135M) often returns instead a copy of the
assistant's question, of an earlier turn, or of its own goal summary; such a reply adds nothing, and a
trajectory built on it measures the simulator, not the policy. This module flags them.

**Definition.** Texts are compared as bags of tokens (lower-cased ``\\w+`` runs). The token F1 of a
reply r and a reference t is ``2 * overlap / (|r| + |t|)`` with ``overlap`` the multiset intersection
size (precision ``overlap/|r|`` and recall ``overlap/|t|`` combined). A reply is a **copy** of t when
both have at least :data:`MIN_TOKENS` tokens and the F1 is at least :data:`COPY_F1` — an exact copy
(1.0), a copy with case, punctuation or a word or two changed ("Which year do you mean?" ->
"which year do you mean"), or a copy with one short addition ("Which year do you mean? 2020": 0.91).
References (the one with the highest F1 names the source; ties go to the earlier one in this list):

- ``question``: the assistant's latest turn, the one being answered;
- ``history``: any earlier turn of the dialogue the simulator saw (the example's history and the
  simulated turns before the question, either role);
- ``goal``: the simulator's own goal text (the LLM simulator's summary, or the target SQL on AmbigSQL);
- ``instructions``: a line of the simulator's own prompt (SmolLM2 has answered with "You're the one
  asking: never give the final answer ...").

The last two come from the simulator (``UserSimulator.own_texts``; the oracle has none).

Single-token replies ("2020", "Yes") are never flagged. The oracle simulator (gold replies) is the
reference: on real data its flags should be (close to) zero.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from clarifylab.backends.base import Message

COPY_F1 = 0.8
"""Token F1 at or above which a reply counts as a copy of a reference."""
MIN_TOKENS = 2
"""Replies and references shorter than this (in tokens) are never compared."""
SOURCES = ("question", "history", "goal", "instructions")
"""What a degenerate reply copied, in the order checked."""
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased ``\\w+`` runs of ``text``: ``"Which year, 2020?"`` -> ``["which", "year", "2020"]``."""
    return _TOKEN.findall(text.lower())


def token_f1(reply: Sequence[str], reference: Sequence[str]) -> float:
    """``2 * |reply ∩ reference| / (|reply| + |reference|)`` over token multisets (0.0 when both are empty)."""
    total = len(reply) + len(reference)
    return 2 * sum((Counter(reply) & Counter(reference)).values()) / total if total else 0.0


def copy_f1(reply: str, reference: str) -> float:
    """Token F1 of ``reply`` and ``reference``; 0.0 when either has fewer than :data:`MIN_TOKENS` tokens."""
    ours, theirs = tokens(reply), tokens(reference)
    return token_f1(ours, theirs) if len(ours) >= MIN_TOKENS and len(theirs) >= MIN_TOKENS else 0.0


def is_copy(reply: str, reference: str) -> bool:
    """True when ``reply`` is an exact or near copy of ``reference`` (module docstring)."""
    return copy_f1(reply, reference) >= COPY_F1


def copy_source(reply: str, conversation: Sequence[Message],
                own_texts: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """What ``reply`` copies, one of :data:`SOURCES`, or None for a genuine reply.

    Args:
        reply: the simulated user's message.
        conversation: the dialogue the simulator answered (a leading system message is ignored); its last
            message is the assistant's question.
        own_texts: the simulator's own texts by source (``{"goal": [summary], "instructions": [lines]}``).
    """
    dialogue = [m["content"] for m in conversation if m.get("role") != "system"]
    references = {"question": dialogue[-1:], "history": dialogue[:-1], **(own_texts or {})}
    best = {source: max((copy_f1(reply, text) for text in references.get(source, ())), default=0.0)
            for source in SOURCES}
    source = max(SOURCES, key=lambda s: (best[s], -SOURCES.index(s)))
    return source if best[source] >= COPY_F1 else None
