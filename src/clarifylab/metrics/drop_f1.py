"""DROP exact match and F1 (Dua et al., 2019), in the official variant and the PACIFIC/TAT-QA variant.

Both variants score a predicted answer against a gold answer, each a single span or a list of spans
(multi-span answers), and return ``(em, f1)`` with ``em`` in {0.0, 1.0} and ``f1`` in [0, 1]
rounded to 2 decimals. F1 is the bag-of-words (set of tokens) F1 of one predicted span against
one gold span; spans are aligned one-to-one by maximum-weight bipartite matching
(``scipy.optimize.linear_sum_assignment``) and the F1 is the mean over the
``max(len(gold), len(pred))`` aligned spans (unaligned spans count 0).

Official DROP (:func:`drop_em_f1`, :func:`drop_em_f1_max`), as the allennlp-reading-comprehension
evaluator does it:

- tokens are split on spaces and hyphens; each token is lowercased; a token that does not parse as
  a float loses all punctuation (so ``"1,000"`` -> ``"1000"``; note ``"$1.2"`` -> ``"12"`` and a
  sentence-final ``"3.5."`` -> ``"35"``, as in the official script); a token that parses as a
  float becomes ``str(float(token))`` (``"1000"``, ``"1000.0"``, ``"1,000"`` all -> ``"1000.0"``);
  the articles a/an/the are dropped;
- number-match rule: if a gold span contains numbers and none of them is in the predicted span,
  that pair's F1 is 0;
- several gold answers: EM and F1 are each maximised over the golds; blank golds are skipped.

PACIFIC/TAT-QA (:func:`tatqa_em_f1`), following the semantics of ``tatqa_metric.py`` /
``tatqa_utils.py`` of the TAT-QA evaluator, which PACIFIC (Deng et al., 2022) and ACT reuse:

1. Numbers. A string is a number when, after deleting the characters ``'"\\$€£¥%(),[]`` from each
   word, its first word parses as a finite float and its second word, if any, is a scale word
   (``"$1.2 million"``, ``"(134)"``, ``"12%"``, ``"1,000"`` are numbers; ``"2019 revenue"`` is not).
   Its value is the first number in it, times the scale of the first "number + word" group
   (hundred 1e2, thousand 1e3, million 1e6, billion 1e9, percent 0.01), times -1 if a
   parenthesised number such as ``"(134)"`` or ``"(1,234)"`` appears (accounting negative), times
   0.01 if a number is followed by ``%`` (also after its closing parenthesis: ``"(59.9)%"`` is
   -0.599); rounded to 4 decimals, with -0 read as 0.
2. Answer string. The spans of an answer are sorted and each is rewritten: a number with ``%``
   becomes ``"%.4f" % value``, and so does a number that states its own scale word (``"$15.5
   million"`` -> ``"15500000.0000"`` whatever the answer's scale); another number becomes
   ``"%.4f" % (round(value, 2) * scale)`` where ``scale`` is the answer's scale (the gold's
   ``scale`` field, or ``pred_scale``); a
   non-number gets ``" " + scale`` appended when a scale is given. The rewritten spans are joined
   by spaces into ONE string (so multi-span answers are compared as one bag).
   Hence ``"$1.2 million"`` (no scale) and gold ``1.2`` with scale ``million`` both become
   ``"1200000.0000"``; ``"12%"`` and gold ``0.12`` (no scale) or gold ``12`` with scale
   ``percent`` all become ``"0.1200"``; ``"(134)"`` and ``"-134"`` both become ``"-134.0000"``.
3. A single numeric prediction without a scale and without ``%`` is also tried unrounded
   (``"%.4f" % value``), so a predicted ratio ``0.2342`` matches gold ``23.42`` percent.
4. Normalisation before the bag F1: split on spaces only; lowercase; tokens that are numbers (rule
   1) keep their punctuation and become ``str(value)``; other tokens lose punctuation; articles
   dropped. There is NO number-match rule.
5. For ``answer_type`` ``"arithmetic"`` or ``"count"`` the F1 is set to the EM.

Deviations from the TAT-QA code, all deliberate: ``inf``/``nan`` are not numbers; the
parenthesised-negative and percent patterns accept thousands commas (``"(1,234)"``); a span that
states its scale word is not scaled again by the answer's scale (TAT-QA turns gold ``"$3.0 million"``
with scale ``million`` into 3e12, so the gold scored 0 against itself rewritten as text); ``"(59.9)%"``
is -0.599 like ``"-59.9%"`` (TAT-QA reads -59.9, so the obvious ``"-59.9%"`` scored 0); ``-0`` equals
``0`` (TAT-QA compares the strings ``"-0.0"`` and ``"0.0"``); number values
are always floats, so a number token inside free text (``"134"`` -> ``"134.0"``) can match a
rewritten gold number (``"134.0000"`` -> ``"134.0"``) where TAT-QA's int/float mix would not; an
unknown gold scale raises instead of counting as 1. Checked against a transcription of the TAT-QA
code on 13,318 (prediction, gold) pairs built from PACIFIC validation answers (exact, rescaled,
negated, percent, other-question and free-text predictions): identical scores except 260 pairs
with number tokens in free text or space-joined spans, which score higher here, never lower (that
check predates the scale-word, ``(x)%`` and -0 rules; among the PACIFIC validation and TAT-QA dev
golds only ``"$3.0 million"`` with scale ``million`` is rewritten differently by them).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

Span = str | int | float
Answer = Span | Sequence[Span]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


# --------------------------------------------------------------------------- shared bag-of-words F1


def _spans(answer: Answer) -> list[str]:
    """An answer as a list of span strings (a bare string or number is one span)."""
    if isinstance(answer, (str, int, float)):
        return [str(answer)]
    return [str(span) for span in answer] or [""]  # no spans scores like an empty span


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    """F1 of two token sets; an empty set has precision (or recall) 1 by convention."""
    overlap = len(gold & predicted)
    precision = overlap / len(predicted) if predicted else 1.0
    recall = overlap / len(gold) if gold else 1.0
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _aligned_em_f1(
    predicted_spans: list[str],
    gold_spans: list[str],
    number_match: bool,
    is_number: Callable[[str], bool],
) -> tuple[float, float]:
    """EM and F1 of already normalised span lists.

    EM: the normalised spans are equal as sets and in count. F1: scores is a
    (len(gold), len(pred)) matrix of bag F1s; the maximum-weight one-to-one alignment is found with
    ``linear_sum_assignment`` and the mean is taken over max(len(gold), len(pred)) slots.
    """
    em = float(set(predicted_spans) == set(gold_spans) and len(predicted_spans) == len(gold_spans))
    predicted_bags = [set(span.split()) for span in predicted_spans]
    gold_bags = [set(span.split()) for span in gold_spans]
    scores = np.zeros((len(gold_bags), len(predicted_bags)))
    for g, gold_bag in enumerate(gold_bags):
        gold_numbers = {token for token in gold_bag if is_number(token)}
        for p, predicted_bag in enumerate(predicted_bags):
            if number_match and gold_numbers and not gold_numbers & predicted_bag:
                continue  # gold has numbers, none predicted: this pair scores 0
            scores[g, p] = _bag_f1(predicted_bag, gold_bag)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    slot_scores = np.zeros(max(len(gold_bags), len(predicted_bags)))
    slot_scores[rows] = scores[rows, cols]
    return em, float(np.round(np.mean(slot_scores), 2))


# --------------------------------------------------------------------------- official DROP


def _parses_as_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def normalize_drop_answer(text: str) -> str:
    """Official DROP normalisation of one span: ``"The 1,000-yard run."`` -> ``"1000.0 yard run"``."""
    parts = []
    for token in re.split(" |-", text):
        token = token.lower()
        if not _parses_as_float(token):
            token = "".join(ch for ch in token if ch not in _PUNCTUATION)
        if _parses_as_float(token):
            token = str(float(token))
        token = " ".join(_ARTICLES.sub(" ", token).split())
        if token:
            parts.append(token)
    return " ".join(parts)


def drop_em_f1(prediction: Answer, gold: Answer) -> tuple[float, float]:
    """Official DROP (em, f1) of a prediction against ONE gold answer (each a span or a list of spans)."""
    predicted_spans = [normalize_drop_answer(span) for span in _spans(prediction)]
    gold_spans = [normalize_drop_answer(span) for span in _spans(gold)]
    return _aligned_em_f1(predicted_spans, gold_spans, number_match=True, is_number=_parses_as_float)


def drop_em_f1_max(prediction: Answer, golds: Sequence[Answer]) -> tuple[float, float]:
    """Official DROP (em, f1) maximised (separately) over alternative gold answers; blank golds are skipped.

    ``golds`` is a list of alternatives, each a span or a list of spans: ``["4", ["red", "blue"]]``.
    Returns (0.0, 0.0) when every gold is blank, as the official script does.
    """
    if isinstance(golds, str) or not len(golds):
        raise ValueError(f"drop_em_f1_max: golds must be a non-empty list of alternative answers, got {golds!r}")
    best_em, best_f1 = 0.0, 0.0
    for gold in golds:
        if not any(span.strip() for span in _spans(gold)):
            continue
        em, f1 = drop_em_f1(prediction, gold)
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    return best_em, best_f1


# --------------------------------------------------------------------------- PACIFIC / TAT-QA

# Checked by substring in this order, as TAT-QA does ("thousands" -> thousand).
_SCALES: tuple[tuple[str, float], ...] = (
    ("hundred", 100.0),
    ("thousand", 1e3),
    ("million", 1e6),
    ("billion", 1e9),
    ("percent", 0.01),
)
_NOT_IN_NUMBER = str.maketrans("", "", "'\"\\$€£¥%(),[]")
_FIRST_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?|[+-]?\.\d+")
_NUMBER_THEN_WORD = re.compile(r"[\d.]+\s?[a-zA-Z]+")
_PARENTHESISED_NUMBER = re.compile(r"\([\d.,\s%]+\)")
_PERCENT_NUMBER = re.compile(r"[\d.,\s]+\)?%")  # "12%", "(59.9)%"
_EM_ONLY_ANSWER_TYPES = frozenset({"arithmetic", "count"})


def scale_factor(scale: str) -> float:
    """Multiplier of a scale word: ``"million"`` -> 1e6, ``"percent"`` -> 0.01, anything else -> 1."""
    lowered = scale.lower()
    for word, factor in _SCALES:
        if word in lowered:
            return factor
    return 1.0


def _is_finite_float(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def is_tatqa_number(text: str) -> bool:
    """True for ``"1,000"``, ``"$1.2 million"``, ``"(134)"``, ``"12%"``; False for ``"2019 revenue"``."""
    words = " ".join(word.translate(_NOT_IN_NUMBER) for word in text.split()).split()
    if not words or not _is_finite_float(words[0]):
        return False
    return len(words) == 1 or scale_factor(words[1]) != 1.0


def stated_scale(text: str) -> float:
    """Scale factor written in ``text`` after its first number (``"$15.5 million"`` -> 1e6), else 1."""
    scaled = _NUMBER_THEN_WORD.search(text)
    return scale_factor(scaled.group(0)) if scaled is not None else 1.0


def tatqa_number_value(text: str) -> float | None:
    """Value of a number string (rule 1 of the module docstring): ``"$1.2 million"`` -> 1200000.0."""
    match = _FIRST_NUMBER.search(text.translate(_NOT_IN_NUMBER))
    if match is None:
        return None
    value = float(match.group(0)) * stated_scale(text)
    if _PARENTHESISED_NUMBER.search(text.strip()):
        value *= -1
    if _PERCENT_NUMBER.search(text.strip()):
        value *= 0.01
    return round(value, 4) + 0.0  # + 0.0 turns -0.0 into 0.0: "-0" and "0" are one number


def _tatqa_answer_string(spans: list[str], scale: str) -> str:
    """Rule 2: sorted spans rewritten with their scale and joined into one string."""
    rewritten = []
    for span in sorted(spans):
        value = tatqa_number_value(span) if is_tatqa_number(span) else None
        if value is None:
            rewritten.append(f"{span} {scale}" if scale else span)
        elif "%" in span or stated_scale(span) != 1.0:  # the span's own %/scale word is in value already
            rewritten.append("%.4f" % value)
        else:
            rewritten.append("%.4f" % (round(value, 2) * scale_factor(scale)))
    return " ".join(rewritten)


def normalize_tatqa_answer(text: str) -> str:
    """Rule 4: ``"Revenue was $1.2"`` -> ``"revenue was 1.2"``; ``"(134)"`` -> ``"-134.0"``."""
    parts = []
    for token in text.split(" "):
        token = token.lower()
        if not is_tatqa_number(token):
            token = "".join(ch for ch in token if ch not in _PUNCTUATION)
        if is_tatqa_number(token):
            value = tatqa_number_value(token)
            token = str(value) if value is not None else token
        token = " ".join(_ARTICLES.sub(" ", token).split())
        if token:
            parts.append(token)
    return " ".join(parts)


def tatqa_em_f1(
    prediction: Answer | None,
    gold: Answer | None,
    gold_scale: str = "",
    pred_scale: str = "",
    answer_type: str | None = None,
) -> tuple[float, float]:
    """PACIFIC/TAT-QA (em, f1) of a prediction against one gold answer (rules in the module docstring).

    Args:
        prediction: the predicted answer, a string (e.g. ``"$1.2 million"``) or a list of spans.
        gold: the gold ``answer`` field: a list of spans (span / multi-span), a number (arithmetic)
            or a numeric string (count).
        gold_scale: the gold ``scale`` field: "", "thousand", "million", "billion" or "percent".
        pred_scale: the predicted scale when the model states it separately ("" when the scale, if
            any, is written inside ``prediction``).
        answer_type: the gold ``answer_type``; for "arithmetic" and "count" the F1 equals the EM.

    Returns:
        (em, f1); (0.0, 0.0) when the prediction or the gold is empty.
    """
    if gold_scale and scale_factor(gold_scale) == 1.0:
        raise ValueError(f"tatqa_em_f1: unknown gold_scale {gold_scale!r}; "
                         f"expected one of '', {', '.join(repr(word) for word, _ in _SCALES)}")
    if prediction is None or gold is None:
        return 0.0, 0.0
    predicted_spans, gold_spans = _spans(prediction), _spans(gold)
    if not any(span.strip() for span in predicted_spans) or not any(span.strip() for span in gold_spans):
        return 0.0, 0.0
    if answer_type == "count" and _is_finite_float(gold_spans[0]):
        gold_spans = [str(int(float(gold_spans[0])))]

    gold_string = normalize_tatqa_answer(_tatqa_answer_string(gold_spans, gold_scale))
    candidates = [_tatqa_answer_string(predicted_spans, pred_scale)]
    single = predicted_spans[0] if len(predicted_spans) == 1 else ""
    if single and not pred_scale and "%" not in single and is_tatqa_number(single):
        value = tatqa_number_value(single)
        if value is not None:
            candidates.append("%.4f" % value)  # rule 3: unrounded value, e.g. a ratio vs a percent gold
    best_em, best_f1 = 0.0, 0.0
    for candidate in candidates:
        em, f1 = _aligned_em_f1([normalize_tatqa_answer(candidate)], [gold_string], number_match=False,
                                is_number=is_tatqa_number)
        best_em, best_f1 = max(best_em, em), max(best_f1, f1)
    if answer_type in _EM_ONLY_ANSWER_TYPES:
        best_f1 = best_em
    return best_em, best_f1
