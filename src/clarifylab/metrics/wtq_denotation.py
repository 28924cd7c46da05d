"""WikiTableQuestions denotation accuracy (Pasupat & Liang, 2015): the predicted set of values equals the
gold set of target values.

Values are compared after :func:`~clarifylab.metrics.answer_match.normalize_answer` (lowercase, no
punctuation or articles), and as numbers when both parse as one (``"1,000"`` == ``"1000.0"``). The order of
values does not matter; their number does. A prediction is read as several values by splitting on ``|``,
``;`` or ``", "`` when the gold has several values (the loader joins them with ``", "``), and as one value
when the gold has one (so ``"Smith, John"`` stays whole).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from clarifylab.metrics.answer_match import normalize_answer, parse_number

_SEPARATORS = re.compile(r"\s*\|\s*|\s*;\s*|,\s+")


def split_values(prediction: str, expected: int) -> list[str]:
    """``prediction`` as a list of values: whole when ``expected == 1``, else split on ``| ; ", "``."""
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


def denotation_match(prediction: str, targets: Sequence[str]) -> float:
    """1.0 when the values of ``prediction`` match ``targets`` one-to-one (any order), else 0.0.

    Args:
        prediction: the response text.
        targets: the gold target values (WTQ ``targetValue`` split on ``|``), at least one.
    """
    if not targets:
        raise ValueError("denotation_match: no target values given")
    predicted = split_values(prediction, len(targets))
    if len(predicted) != len(targets):
        return 0.0
    remaining = list(targets)
    for value in predicted:
        hit = next((i for i, gold in enumerate(remaining) if values_match(value, gold)), None)
        if hit is None:
            return 0.0
        remaining.pop(hit)
    return 1.0
