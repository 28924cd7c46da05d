"""Whether a free-form reply *names* the gold answer (the teacher-student curriculum's ``match=contains``).

The official scorers (WTQ denotation accuracy, TAT-QA DROP F1) read the whole reply as the answer, so a small
model that answers in a sentence ("The next language after Russian is German.") scores 0 although it names the
right value. ``contains`` reads the reply as a sentence instead:

- every value of one gold alternative must be named: a number when some number written in the reply equals it
  once rounded to the gold's decimals, sign aside (``"11.764"`` names ``"11.76"``; ``"1,200"`` names ``"1200"``;
  "fell by 12.5" names ``"-12.5"``), text when
  its normalized form (:func:`~clarifylab.metrics.answer_match.normalize_answer`) is a whole-word span of the
  normalized reply;
- and the reply must name no **distractor**: another value of the table column(s) that hold the answer (stored
  by the curriculum in ``Example.meta["answer_distractors"]``), unless the question itself names it or it
  overlaps a gold value. This refuses a reply that copies a column or the user's supplied row back, which would
  otherwise "name" the gold by listing everything;
- and the reply must not copy the information the user supplied (``supplied``: the clarification's or the
  correction's user text): sharing a run of :data:`COPY_WORDS` normalized words with it, other than a run inside
  a gold value, means the reply repeats what it was told ("The missing row reads: Language: German; ...") instead
  of answering.

Pure functions; the definition is also in the README (teacher-student section).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from clarifylab.metrics.answer_match import normalize_answer, numbers_in, parse_number

COPY_WORDS = 5
"""Length of a word run shared with the supplied text that makes a reply a copy."""


def _decimals(value: str) -> int:
    """Decimal places written in a number string (``"11.76"`` -> 2, ``"1,200"`` -> 0)."""
    try:
        exponent = Decimal(value.strip().lstrip("$€£").rstrip("%").replace(",", "")).as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -int(exponent)) if isinstance(exponent, int) else 0


def names_value(reply: str, value: str) -> bool:
    """True when ``reply`` names ``value`` (module docstring): a number by rounded equality with a number in the
    reply, text as a whole-word span after normalization. An empty value is never named."""
    number = parse_number(value)
    if number is not None:
        places = _decimals(value)
        for written in numbers_in(reply):
            if abs(round(written, places)) == abs(round(number, places)):  # sign-free: "fell by 12.5" names -12.5
                return True
        return False
    wanted = normalize_answer(value)
    return bool(wanted) and f" {wanted} " in f" {normalize_answer(reply)} "


def _runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize_answer(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def copies(reply: str, supplied: str, golds: Sequence[str] = ()) -> bool:
    """True when ``reply`` shares a run of :data:`COPY_WORDS` normalized words with ``supplied`` that is not a
    run inside one of ``golds`` (module docstring)."""
    inside = set().union(*(_runs(g, COPY_WORDS) for g in golds)) if golds else set()
    return bool((_runs(reply, COPY_WORDS) & _runs(supplied, COPY_WORDS)) - inside)


def names_answer(reply: str, alternatives: Sequence[Sequence[str]], distractors: Sequence[str] = (),
                 question: str = "", supplied: str = "") -> bool:
    """True when ``reply`` names every value of some gold alternative and no distractor (module docstring).

    Args:
        reply: the model's free-form answer.
        alternatives: gold alternatives, each a list of values that must all be named.
        distractors: other values of the answer's column(s); naming one (outside the question's own words and
            the gold values) makes the reply wrong.
        question: the question the reply answers (its words are not counted as distractors).
        supplied: what the user told the model before this reply (a copy of it is no answer: :func:`copies`).
    """
    if supplied and copies(reply, supplied, [v for alternative in alternatives for v in alternative]):
        return False
    golds = {normalize_answer(v) for alternative in alternatives for v in alternative}
    asked = f" {normalize_answer(question)} "
    for distractor in distractors:
        norm = normalize_answer(distractor)
        if not norm or f" {norm} " in asked or any(norm in g or g in norm for g in golds if g):
            continue
        if names_value(reply, distractor):
            return False
    return any(alternative and all(names_value(reply, v) for v in alternative) for alternative in alternatives)


def gold_alternatives(golds: Sequence[str], meta: dict) -> list[list[str]]:
    """The gold alternatives of an Example, each a list of values to name: WTQ's ``meta["target_values"]`` (all
    of them), TAT-QA's raw ``meta["goal_answer"]`` (its spans, or its number), else each goal on its own."""
    if meta.get("target_values"):
        return [[str(v) for v in meta["target_values"]]]
    if "goal_answer" in meta:
        answer = meta["goal_answer"]
        return [[str(v) for v in answer]] if isinstance(answer, list) else [[str(answer)]]
    return [[str(g)] for g in golds]
