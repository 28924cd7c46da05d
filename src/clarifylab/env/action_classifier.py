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


# Question words. Without a '?', an opener alone is weak evidence: gold answers such as "May 1954",
# "Will and his friends", "Did not" or "When it was almost dark" open with one (see is_asking).
WH_WORDS = frozenset("which what who whom whose when where why how".split())
AUXILIARIES = frozenset(
    "do does did is are was were am can could would will should shall may might must have has had "
    "don't doesn't didn't isn't aren't wasn't weren't can't couldn't wouldn't won't shouldn't haven't hasn't "
    "hadn't".split())
INTERROGATIVE_OPENERS = WH_WORDS | AUXILIARIES
# Subjects that may follow an inverted auxiliary ("is it", "do you", "did the company"). After an
# opening auxiliary determiners count too; inside the sentence only pronouns do, because "is the"
# is ordinary statement word order there ("when revenue is the largest item").
SUBJECT_PRONOUNS = frozenset("you i we they he she it there".split())
SUBJECTS = SUBJECT_PRONOUNS | frozenset("this that these those the your my his her their its our".split())
# Words that, right after a wh-word, start a subordinate clause rather than a wh-phrase:
# "when it was dark", "how the company ...", "where his ..." (compare "which year", "what metric").
CLAUSE_STARTERS = SUBJECTS | frozenset("a an".split())
SECOND_PERSON = frozenset("you your yours yourself you're you'd you'll you've".split())
# Lower-case words that a title ("What Broke My Father's Heart", "The Bank of England") may contain.
TITLE_MINOR_WORDS = frozenset("a an the of and or in on at to for by with from as".split())
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
WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")


def split_sentences(text: str) -> list[str]:
    """Split on whitespace that follows ``.``, ``!`` or ``?`` (so ``12.5`` stays whole); drop empties."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def words_of(sentence: str) -> list[str]:
    """The sentence's words (letters/digits, with apostrophe contractions), case kept, ``’`` as ``'``."""
    return [w.replace("\u2019", "'") for w in WORD.findall(sentence)]


def is_title(words: Sequence[str]) -> bool:
    """A name or title: at least three words, each capitalised or a minor word ("of", "the", ...), the
    first capitalised — e.g. the Abg-CoQA answer "What Broke My Father's Heart"."""
    return (len(words) >= 3 and words[0][:1].isupper()
            and all(w[:1].isupper() or w.lower() in TITLE_MINOR_WORDS for w in words))


def has_question_shape(words: Sequence[str]) -> bool:
    """Does an unpunctuated sentence that opens with a question word read as a question?

    ``words`` lower-cased. True for

    1. an inverted yes/no question: an auxiliary followed by a subject ("is it ...", "did the company ...");
    2. a wh-question with inversion: the wh-word followed by an auxiliary ("what is ...", "when did ...") or,
       later, an auxiliary followed by a subject pronoun ("which year do you mean");
    3. a wh-sentence that addresses the user ("what you need ..."): a second-person pronoun;
    4. a bare wh-phrase ("what year", "which metric: revenue or profit", "how many"): no auxiliary at all
       and the word after the wh-word does not start a clause.

    False otherwise — in particular for a wh-word opening a subordinate clause without inversion
    ("when it was almost dark", "where war had reigned", "when revenue is recognized") and for an opener
    that is not used as one ("May 1954", "Will and his friends", "Did not").
    """
    if not words:
        return False
    first, second = words[0], (words[1] if len(words) > 1 else None)
    if first in AUXILIARIES:
        return second in SUBJECTS
    if first not in WH_WORDS:
        return False
    if second in AUXILIARIES:
        return True
    if any(w in AUXILIARIES and nxt in SUBJECT_PRONOUNS for w, nxt in zip(words[1:], words[2:])):
        return True
    if any(w in SECOND_PERSON for w in words):
        return True
    return not any(w in AUXILIARIES for w in words) and second not in CLAUSE_STARTERS


def is_asking(sentence: str) -> bool:
    """Does a sentence ask the user something?

    Yes if it ends with ``?`` or contains an asking phrase ("do you mean", "could you specify", "please
    clarify", ...). Otherwise only a sentence that opens with an interrogative or auxiliary word, does
    not end like a statement (``.``/``!``), is not a title (:func:`is_title`) and has a question shape
    (:func:`has_question_shape`) asks — unfinished generations ("Which year do you mean: 2019 or") still
    count, short answers that merely start with such a word ("May 1954", "When it was almost dark") do not.
    """
    stripped = sentence.rstrip(" \"'”’)")
    if stripped.endswith("?") or ASKING_PHRASE.search(sentence):
        return True
    if stripped.endswith((".", "!")):
        return False
    words = words_of(sentence)
    if not words or words[0].lower() not in INTERROGATIVE_OPENERS or is_title(words):
        return False
    return has_question_shape([w.lower() for w in words])


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
