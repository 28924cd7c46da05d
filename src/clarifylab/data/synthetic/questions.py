"""Question specifications over a :class:`SyntheticTable` and their exact answers.

A :class:`QuestionSpec` names every slot a question needs. Four kinds (SPEC §3, synthetic_tables):

=========== ================================================ ===================================
kind        answer                                           slots a user can leave out
=========== ================================================ ===================================
lookup      v(entity, metric, year)                          entity, metric, year
difference  v(entity, metric, end_year) - v(..., year)       entity, metric, years (the pair)
ratio       v(entity, metric, year) / v(entity, denominator, year)      entity, year
  (growth)  v(entity, metric, end_year) / v(..., year)       entity, metric, years (the pair)
sum         sum over all entities of v(entity, metric, year) metric, year
=========== ================================================ ===================================

Answers are rendered by :func:`~clarifylab.data.synthetic.table.format_answer` (2 decimals, half away
from zero, no trailing zeros).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from clarifylab.data.synthetic.table import SyntheticTable, format_answer

KINDS = ("lookup", "difference", "ratio", "sum")
# A variant is a kind with its shape: the ratio kind has a ratio of two metrics and a growth ratio.
VARIANTS = ("lookup", "difference", "ratio_metrics", "ratio_years", "sum")
SLOTS = ("entity", "metric", "year", "years")

REMOVABLE_SLOTS: dict[str, tuple[str, ...]] = {
    "lookup": ("entity", "metric", "year"),
    "difference": ("entity", "metric", "years"),
    "ratio_metrics": ("entity", "year"),
    "ratio_years": ("entity", "metric", "years"),
    "sum": ("metric", "year"),
}

# An earlier question in the history must not settle the slot the latest question leaves out (else a
# reader could carry it over and the clarifying question would be needless): it either has no value for
# that slot or has two of them.
HISTORY_VARIANTS_LEAVING_OPEN: dict[str, tuple[str, ...]] = {
    "entity": ("sum",),
    "metric": ("ratio_metrics",),
    "year": ("difference", "ratio_years"),
    "years": ("lookup", "ratio_metrics", "sum"),
}


@dataclass(frozen=True)
class QuestionSpec:
    """A fully specified question.

    Attributes:
        kind: one of ``KINDS``.
        metric: the metric (the numerator of a ratio of metrics).
        year: the year (the start year of a difference or growth ratio).
        entity: the company; ``None`` for ``sum`` (all companies).
        denominator: the second metric of a ratio of metrics, else ``None``.
        end_year: the end year of a difference or growth ratio, else ``None``.
    """

    kind: str
    metric: str
    year: int
    entity: str | None = None
    denominator: str | None = None
    end_year: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"QuestionSpec.kind must be one of {KINDS}, got {self.kind!r}")
        if (self.entity is None) != (self.kind == "sum"):
            raise ValueError(f"QuestionSpec {self}: entity is required except for kind 'sum', where it must be None")
        if self.denominator is not None and self.kind != "ratio":
            raise ValueError(f"QuestionSpec {self}: denominator is only for kind 'ratio'")
        needs_end_year = self.kind == "difference" or (self.kind == "ratio" and self.denominator is None)
        if (self.end_year is not None) != needs_end_year:
            raise ValueError(f"QuestionSpec {self}: end_year is required for difference and growth ratio only")
        if self.end_year is not None and self.end_year <= self.year:
            raise ValueError(f"QuestionSpec {self}: end_year must come after year")
        if self.denominator == self.metric:
            raise ValueError(f"QuestionSpec {self}: a ratio needs two different metrics")

    @property
    def variant(self) -> str:
        """``kind``, with ``ratio`` split into ``ratio_metrics`` and ``ratio_years`` (growth)."""
        if self.kind != "ratio":
            return self.kind
        return "ratio_metrics" if self.denominator is not None else "ratio_years"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (stored in ``Example.meta["question"]``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QuestionSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**record)


def answer_value(table: SyntheticTable, spec: QuestionSpec) -> Fraction:
    """The exact answer (in $ million, or unitless for ratios) of ``spec`` over ``table``."""
    if spec.kind == "lookup":
        return table.value(spec.entity, spec.metric, spec.year)
    if spec.kind == "difference":
        return table.value(spec.entity, spec.metric, spec.end_year) - table.value(spec.entity, spec.metric, spec.year)
    if spec.kind == "ratio" and spec.denominator is not None:
        return table.value(spec.entity, spec.metric, spec.year) / table.value(spec.entity, spec.denominator, spec.year)
    if spec.kind == "ratio":
        return table.value(spec.entity, spec.metric, spec.end_year) / table.value(spec.entity, spec.metric, spec.year)
    return sum((table.value(entity, spec.metric, spec.year) for entity in table.entities), Fraction(0))


def answer_for(table: SyntheticTable, spec: QuestionSpec) -> str:
    """The canonical answer string of ``spec`` over ``table`` (e.g. ``"12.5"``, ``"-3.25"``, ``"0.83"``)."""
    return format_answer(answer_value(table, spec))


def answer_scale(spec: QuestionSpec) -> str:
    """PACIFIC-style scale word of the answer: ``"million"`` for amounts, ``""`` for ratios."""
    return "" if spec.kind == "ratio" else "million"


def removable_slots(spec: QuestionSpec) -> tuple[str, ...]:
    """The slots whose omission makes ``spec``'s question unanswerable from its table."""
    return REMOVABLE_SLOTS[spec.variant]


def sample_spec(table: SyntheticTable, rng: random.Random, variants: tuple[str, ...] | None = None) -> QuestionSpec:
    """A random fully specified question over ``table``.

    Without ``variants`` the kind is uniform over ``KINDS`` (a ratio is of metrics or a growth ratio with
    equal odds); with ``variants`` the variant is uniform over them.
    """
    if variants is None:
        kind = rng.choice(KINDS)
        variant = rng.choice(("ratio_metrics", "ratio_years")) if kind == "ratio" else kind
    else:
        variant = rng.choice(variants)
    entity = rng.choice(table.entities)
    if variant == "lookup":
        return QuestionSpec("lookup", metric=rng.choice(table.metrics), year=rng.choice(table.years), entity=entity)
    if variant == "ratio_metrics":
        metric, denominator = rng.sample(table.metrics, 2)
        return QuestionSpec("ratio", metric=metric, year=rng.choice(table.years), entity=entity,
                            denominator=denominator)
    if variant == "sum":
        return QuestionSpec("sum", metric=rng.choice(table.metrics), year=rng.choice(table.years))
    if variant not in ("difference", "ratio_years"):
        raise ValueError(f"unknown question variant {variant!r}; expected one of {VARIANTS}")
    start, end = sorted(rng.sample(table.years, 2))
    kind = "difference" if variant == "difference" else "ratio"
    return QuestionSpec(kind, metric=rng.choice(table.metrics), year=start, entity=entity, end_year=end)


def variants_of(kinds: tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """The question variants of ``kinds`` (``None``: every kind, the default mix of :func:`sample_spec`).

    ``variants_of(["lookup", "ratio"])`` -> ``("lookup", "ratio_metrics", "ratio_years")``; an unknown or
    repeated kind raises ``ValueError``.
    """
    if kinds is None:
        return None
    kinds = list(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be distinct names from {list(KINDS)}, got {kinds}")
    return tuple(v for v in VARIANTS if (v if not v.startswith("ratio") else "ratio") in kinds)


def year_pairs(table: SyntheticTable) -> list[tuple[int, int]]:
    """All (start, end) pairs of the table's years with start < end, in chronological order."""
    return [(a, b) for i, a in enumerate(table.years) for b in table.years[i + 1:]]


def slot_options(table: SyntheticTable, slot: str) -> list[str]:
    """The values the user may mean when ``slot`` is left out, as written in a clarifying question."""
    if slot == "entity":
        return list(table.entities)
    if slot == "metric":
        return list(table.metrics)
    if slot == "year":
        return [str(year) for year in table.years]
    if slot == "years":
        return [f"{a} to {b}" for a, b in year_pairs(table)]
    raise ValueError(f"unknown slot {slot!r}; expected one of {SLOTS}")


def slot_value(spec: QuestionSpec, slot: str) -> str:
    """``spec``'s value for ``slot``, written like the options of :func:`slot_options`."""
    values = {"entity": spec.entity, "metric": spec.metric, "year": str(spec.year),
              "years": f"{spec.year} to {spec.end_year}" if spec.end_year is not None else None}
    if slot not in values:
        raise ValueError(f"unknown slot {slot!r}; expected one of {SLOTS}")
    if values[slot] is None:
        raise ValueError(f"question {spec} has no slot {slot!r}")
    return values[slot]
