"""WikiTableQuestions denotation accuracy (Pasupat & Liang, 2015): the predicted set of values equals the
gold set of target values.

Values are compared after :func:`~clarifylab.metrics.answer_match.normalize_answer` (lowercase, no
punctuation or articles), and as numbers when both parse as one (``"1,000"`` == ``"1000.0"``). The order of
values does not matter; their number does. The gold stays a list of values (``Example.meta["target_values"]``);
a prediction is text, read as the gold's number of values: it is cut at separators (``|``, ``;``, ``", "``;
the loader's rendered answer joins values with ``", "``) into pieces, and it matches when some grouping of
consecutive pieces, each group rejoined with its separators as written, gives values that match the targets
one-to-one. So ``"March 21, 1964, May 2, 1965"`` matches ``["March 21, 1964", "May 2, 1965"]`` and
``"Smith, John"`` matches the one target ``"Smith, John"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from clarifylab.metrics.answer_match import normalize_answer, parse_number

_SEPARATORS = re.compile(r"\s*\|\s*|\s*;\s*|,\s+")
_MAX_PIECES = 64  # beyond this, pieces are not regrouped (each piece is one value)


def split_values(prediction: str, expected: int) -> list[str]:
    """``prediction`` cut at every separator (``| ; ", "``) when ``expected > 1``, else whole."""
    text = prediction.strip()
    if expected == 1:
        return [text]
    return [part for part in _SEPARATORS.split(text) if part.strip()]


def values_match(predicted: str, gold: str) -> bool:
    """True when both are the same number, or equal after ``normalize_answer``."""
    a, b = parse_number(predicted), parse_number(gold)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return normalize_answer(predicted) == normalize_answer(gold)


def _pieces(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the non-blank pieces of ``text`` between separators."""
    bounds, start = [], 0
    for separator in _SEPARATORS.finditer(text):
        bounds.append((start, separator.start()))
        start = separator.end()
    bounds.append((start, len(text)))
    return [(a, b) for a, b in bounds if text[a:b].strip()]


def _groupings_match(text: str, pieces: list[tuple[int, int]], targets: Sequence[str]) -> bool:
    """True when ``pieces`` form ``len(targets)`` consecutive groups matching ``targets`` one-to-one; a group is
    ``text`` from its first piece's start to its last piece's end. Depth-first over (next piece, targets left),
    memoised, so repeated target values do not multiply the search."""
    failed: set[tuple[int, tuple[str, ...]]] = set()

    def search(first: int, remaining: tuple[str, ...]) -> bool:
        if not remaining:
            return first == len(pieces)
        if (first, remaining) in failed:
            return False
        last_end = len(pieces) - len(remaining)  # leave one piece for each further value
        for last in range(first, last_end + 1):
            value = text[pieces[first][0]:pieces[last][1]]
            for k, gold in enumerate(remaining):
                if gold not in remaining[:k] and values_match(value, gold) and \
                        search(last + 1, remaining[:k] + remaining[k + 1:]):
                    return True
        failed.add((first, remaining))
        return False

    return search(0, tuple(sorted(targets)))


def denotation_match(prediction: str, targets: Sequence[str]) -> float:
    """1.0 when the values of ``prediction`` match ``targets`` one-to-one (any order), else 0.0.

    Args:
        prediction: the response text.
        targets: the gold target values (WTQ ``targetValue`` split on ``|``), at least one; a list, never a
            joined string.
    """
    if isinstance(targets, str) or not targets:
        raise ValueError(f"denotation_match: targets must be a non-empty list of values, got {targets!r}")
    text = prediction.strip()
    if len(targets) == 1:
        return float(values_match(text, targets[0]))
    pieces = _pieces(text)
    if len(pieces) > _MAX_PIECES:  # too many to regroup: each piece is one value
        pieces = pieces if len(pieces) == len(targets) else []
    return float(len(pieces) >= len(targets) and _groupings_match(text, pieces, targets))
