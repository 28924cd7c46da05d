"""Which examples an evaluation with ``max_examples=N`` scores: a seeded sample stratified by gold action.

The first N in file order can hold no ambiguous example at all (Abg-CoQA's test split has 28 clarify
examples among 217), so N examples are drawn instead: each gold action gets its share of N by largest
remainder (``N * n_action / n_total``), every action present in the split gets at least one when
``N >= 2``, and within an action the examples are drawn with ``random.Random(seed)``. The sample is kept
in file order. The same (examples, N, seed) always gives the same sample.

``balanced=True`` (the classifier agreement's ``balanced`` option) asks for ``ceil(N/2)`` gold-clarify and
``floor(N/2)`` gold-answer examples instead, a short side topped up from the other (:func:`balanced_quotas`).
This is the one sampler of evaluation examples: ``evaluate.py`` and ``experiments/classifier_agreement.py`` both
draw with it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError

SAMPLING = "stratified_by_gold_action"
"""How the sample is drawn, as recorded in ``metrics.json`` (``sampling``)."""


def action_quotas(counts: dict[Action, int], n: int) -> dict[Action, int]:
    """How many of ``n`` draws each action gets: its proportional share ``n * count / total`` rounded
    down, the remaining draws to the largest fractional parts (ties: :class:`Action` order), then one
    draw moved from the largest quota to any present action left at 0 (when ``n`` allows).

    >>> action_quotas({Action.CLARIFY: 2, Action.ANSWER: 8}, 4)
    {<Action.CLARIFY: 'clarify'>: 1, <Action.ANSWER: 'answer'>: 3}
    """
    total = sum(counts.values())
    exact = {a: n * c / total for a, c in counts.items()}
    quotas = {a: math.floor(x) for a, x in exact.items()}
    order = list(counts)
    for action in sorted(order, key=lambda a: (-(exact[a] - quotas[a]), order.index(a)))[:n - sum(quotas.values())]:
        quotas[action] += 1
    present = [a for a in order if counts[a] > 0]
    if n >= len(present):
        for action in present:
            if quotas[action] == 0:
                donor = max(present, key=lambda a: quotas[a])
                quotas[donor] -= 1
                quotas[action] += 1
    return quotas


def balanced_quotas(counts: dict[Action, int], n: int) -> dict[Action, int]:
    """``ceil(n/2)`` draws for clarify and ``floor(n/2)`` for answer, the share an action cannot fill moved to
    the other (``n`` <= the total count).

    >>> balanced_quotas({Action.CLARIFY: 3, Action.ANSWER: 7}, 8)
    {<Action.CLARIFY: 'clarify'>: 3, <Action.ANSWER: 'answer'>: 5}
    """
    quotas = {Action.CLARIFY: n - n // 2, Action.ANSWER: n // 2}
    for action in Action:
        short = max(0, quotas[action] - counts[action])
        quotas[action] -= short
        quotas[action.other()] += short
    return quotas


def sample_eval_examples(examples: Sequence[Example], max_examples: int | None, seed: int,
                         balanced: bool = False) -> list[Example]:
    """At most ``max_examples`` of ``examples`` (module docstring), in their input order; all of them
    when ``max_examples`` is None or not smaller than ``len(examples)``. Quotas per gold action:
    :func:`action_quotas` (proportional), or :func:`balanced_quotas` with ``balanced``.

    Raises:
        ConfigError: ``max_examples`` is not None or a positive integer.
    """
    if max_examples is None:
        return list(examples)
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ConfigError(f"max_examples must be null or a positive integer, got {max_examples!r}")
    if max_examples >= len(examples):
        return list(examples)
    by_action = {a: [i for i, e in enumerate(examples) if e.action is a] for a in Action}
    counts = {a: len(ids) for a, ids in by_action.items()}
    quotas = (balanced_quotas if balanced else action_quotas)(counts, max_examples)
    rng = random.Random(seed)
    chosen = [i for a in Action for i in rng.sample(by_action[a], quotas[a])]
    return [examples[i] for i in sorted(chosen)]
