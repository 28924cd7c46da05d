"""Exact match for short answers (numbers, names), with numeric equivalence.

SQuAD-style normalization (lowercase, no punctuation/articles, single spaces). When a gold answer is
a number, the *last* number in the prediction is compared numerically, so "The answer is 12.50."
matches "12.5" and "1,000" matches "1000". The full DROP F1 lives in :mod:`clarifylab.metrics.drop_f1`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
# A number: optional minus (not inside a word/range such as "2019-2020"), thousands groups or plain
# digits, optional decimals.
_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?:(?<![\w.])-)?\.\d+")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-"})
# Decoration allowed around a gold number: currency, percent, whitespace.
_NUMBER_DECORATION = re.compile(r"^[\s$€£]*(?P<number>.*?)[\s%]*$")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_number(text: str) -> float | None:
    """The value of ``text`` if it is a single number (``"1,000"``, ``"-3.25"``, ``"$12.5"``, ``"7%"``), else None."""
    core = _NUMBER_DECORATION.match(text.translate(_MINUS_SIGNS).strip())
    candidate = core.group("number") if core else ""
    if not _NUMBER.fullmatch(candidate):
        return None
    return float(candidate.replace(",", ""))


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text``, in order (``"From 1,200 to -3.5"`` -> [1200.0, -3.5])."""
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text.translate(_MINUS_SIGNS))]


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (``"In 2020 it was 12.50."`` -> 12.5), or None."""
    numbers = numbers_in(text)
    return numbers[-1] if numbers else None


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if ``prediction`` matches any gold answer, else 0.0.

    A numeric gold matches when the last number in the prediction equals it (absolute tolerance
    1e-9, i.e. equal as written); any other gold matches on :func:`normalize_answer` equality.
    """
    if not golds:
        raise ValueError("exact_match: no gold answers given")
    normalized = normalize_answer(prediction)
    predicted_number = last_number(prediction)
    for gold in golds:
        gold_number = parse_number(gold)
        if gold_number is not None:
            if predicted_number is not None and math.isclose(predicted_number, gold_number, rel_tol=0, abs_tol=1e-9):
                return 1.0
        elif normalized == normalize_answer(gold):
            return 1.0
    return 0.0
