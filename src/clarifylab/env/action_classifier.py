"""Action classifiers A: decide whether an assistant response clarifies or answers (ACT's A(y)).

:class:`HeuristicActionClassifier` is the cheap, deterministic one; a few-shot LLM classifier
implements the same :class:`ActionClassifier` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from clarifylab.data.schema import Action, Example


@runtime_checkable
class ActionClassifier(Protocol):
    """Maps responses to actions; ``examples`` (aligned with ``responses``) give context when needed."""

    def classify(self, responses: Sequence[str], examples: Sequence[Example] | None = None) -> list[Action]:
        """One :class:`Action` per response, in order."""
        ...


# Words that open a question ("Which year ...", "Do you mean ...", "Could you ...").
INTERROGATIVE_OPENERS = frozenset(
    "which what who whom whose when where why how do does did is are was were am can could would will "
    "should shall may might have has had".split())
# Phrases that ask the user for information wherever they appear, even without a question mark.
ASKING_PHRASE = re.compile(
    r"\b(?:do|did) you mean\b|\bare you (?:asking|referring|looking)\b"
    r"|\b(?:could|can|would) you (?:please )?(?:clarify|specify|confirm|tell|let|provide|say|indicate)\b"
    r"|\bplease (?:clarify|specify|confirm|let me know|tell me|provide|indicate)\b",
    re.IGNORECASE)
# Explicit answer statements and code (a SQL query is an answer, even if a literal in it ends with '?').
ANSWER_MARKER = re.compile(
    r"\b(?:the )?(?:final )?(?:answer|result) (?:is|was|would be)\b|\banswer\s*:|```|^\s*(?:select|with)\s",
    re.IGNORECASE)
NUMBER = re.compile(r"\d")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Split on whitespace that follows ``.``, ``!`` or ``?`` (so ``12.5`` stays whole); drop empties."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def is_asking(sentence: str) -> bool:
    """A sentence asks the user something if it ends with ``?``, contains an asking phrase
    ("do you mean", "could you specify", "please clarify", ...), or opens with an interrogative or
    auxiliary word and does not end like a statement (``.``/``!``)."""
    stripped = sentence.rstrip(" \"'”’)")
    if stripped.endswith("?") or ASKING_PHRASE.search(sentence):
        return True
    words = re.findall(r"[a-z']+", sentence.lower())
    return bool(words) and words[0] in INTERROGATIVE_OPENERS and not stripped.endswith((".", "!"))


def classify_response(response: str) -> Action:
    """Heuristic action of one response.

    Clarify iff some sentence asks (:func:`is_asking`) and the response has no answer-like content:
    no explicit answer marker ("the answer is", "answer:", code) and no non-asking sentence that
    contains a digit (a stated value such as "Revenue in 2020 was 12.5."). Everything else —
    including an empty response — is an answer.

    >>> classify_response("Which year do you mean?"), classify_response("The answer is 12.5.")
    (<Action.CLARIFY: 'clarify'>, <Action.ANSWER: 'answer'>)
    """
    sentences = split_sentences(response)
    asking = [is_asking(s) for s in sentences]
    if not any(asking):
        return Action.ANSWER
    if ANSWER_MARKER.search(response):
        return Action.ANSWER
    states_a_value = any(NUMBER.search(s) for s, a in zip(sentences, asking) if not a)
    return Action.ANSWER if states_a_value else Action.CLARIFY


class HeuristicActionClassifier:
    """Rule-based action classifier (see :func:`classify_response`); ignores ``examples``."""

    def classify(self, responses: Sequence[str], examples: Sequence[Example] | None = None) -> list[Action]:
        """One :class:`Action` per response, in order."""
        if examples is not None and len(examples) != len(responses):
            raise ValueError(f"classify: got {len(responses)} responses but {len(examples)} examples")
        return [classify_response(r) for r in responses]
