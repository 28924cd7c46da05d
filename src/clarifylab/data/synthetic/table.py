"""Procedurally generated financial tables: made-up companies × metrics × consecutive years.

Values are stored as integers in tenths of a unit ($ million), so sums and differences downstream are
exact and ratios are exact :class:`fractions.Fraction` s before the final rounding.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction

UNIT = "$ million"
LAYOUTS = ("grid", "sentences")  # how a table is written into an Example's context (SyntheticTable.render)
YEARS_PER_TABLE = 3
FIRST_YEARS = range(2015, 2023)  # a table covers FIRST_YEAR .. FIRST_YEAR + 2

# Company names are syllable blends: start + optional middle + end ("Varnex", "Tolitek").
NAME_STARTS = ("Var", "Tol", "Quar", "Bel", "Kor", "Min", "Dra", "Sel", "Fen", "Lum",
               "Pra", "Zor", "Hal", "Nov", "Cre", "Ulv", "Ves", "Tam", "Gil", "Ros")
NAME_MIDDLES = ("a", "i", "o", "e", "an", "el", "or", "is")
NAME_ENDS = ("nex", "tra", "lix", "don", "vo", "rum", "tek", "sia", "ro", "mar", "wen", "dyn")

# Metric name (as written in questions) -> (low, high) share of the company's revenue. Names are
# lower case except proper abbreviations; tables capitalize the first letter.
METRIC_REVENUE_SHARE: dict[str, tuple[float, float]] = {
    "revenue": (1.0, 1.0),
    "gross profit": (0.35, 0.6),
    "operating income": (0.08, 0.25),
    "net income": (0.04, 0.16),
    "R&D expense": (0.03, 0.15),
    "cost of sales": (0.4, 0.65),
    "capital expenditure": (0.04, 0.12),
}


@dataclass(frozen=True)
class SyntheticTable:
    """A companies × metrics × years table of positive values.

    Attributes:
        table_id: unique across the corpus (``"<split>-t<index>"``).
        entities: company names, in row order.
        metrics: metric names as written in questions, in row order.
        years: consecutive years, ascending (the value columns).
        tenths: (entity, metric, year) -> value in tenths of $ million (positive int).
    """

    table_id: str
    entities: tuple[str, ...]
    metrics: tuple[str, ...]
    years: tuple[int, ...]
    tenths: dict[tuple[str, str, int], int]

    def value(self, entity: str, metric: str, year: int) -> Fraction:
        """The exact cell value in $ million; ``KeyError`` names the missing cell."""
        try:
            return Fraction(self.tenths[(entity, metric, year)], 10)
        except KeyError:
            raise KeyError(f"table {self.table_id} has no cell ({entity!r}, {metric!r}, {year})") from None

    def linearize(self) -> str:
        """Compact pipe-separated text: a title line with the unit, a header, one row per entity × metric.

        No spaces around the pipes: a SmolLM2 token each, so a 3 × 3 table stays near 200 tokens.
        Example::

            Results by company ($ million)
            Company|Metric|2019|2020|2021
            Varnex|Revenue|41.2|45.5|47.0
        """
        lines = [f"Results by company ({UNIT})", "|".join(["Company", "Metric", *map(str, self.years)])]
        for entity in self.entities:
            for metric in self.metrics:
                cells = [format_tenths(self.tenths[(entity, metric, year)]) for year in self.years]
                lines.append("|".join([entity, capitalize_first(metric), *cells]))
        return "\n".join(lines)

    def sentences(self) -> str:
        """One sentence per cell, worded like a lookup question, so a small model can copy the value.

        Values are written as answers are (:func:`format_answer`: no trailing zeros). Example::

            Varnex's revenue in 2019 was 41 million.
            Varnex's revenue in 2020 was 45.5 million.
        """
        return "\n".join(f"{entity}'s {metric} in {year} was {format_answer(self.value(entity, metric, year))} million."
                          for entity in self.entities for metric in self.metrics for year in self.years)

    def render(self, layout: str) -> str:
        """The table as context text: ``layout`` is ``"grid"`` (:meth:`linearize`) or ``"sentences"``."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown table layout {layout!r}; expected one of {LAYOUTS}")
        return self.linearize() if layout == "grid" else self.sentences()


def capitalize_first(text: str) -> str:
    """Upper-case the first character only ("net income" -> "Net income", "R&D expense" unchanged)."""
    return text[:1].upper() + text[1:]


def format_tenths(tenths: int) -> str:
    """A table cell with exactly one decimal: 4123 -> "412.3", 4550 -> "455.0", -5 -> "-0.5"."""
    sign = "-" if tenths < 0 else ""
    whole, tenth = divmod(abs(tenths), 10)
    return f"{sign}{whole}.{tenth}"


def format_answer(value: Fraction | int) -> str:
    """The canonical answer string: rounded to 2 decimals, half away from zero, without trailing zeros.

    12.50 -> "12.5", -3.25 -> "-3.25", 5/6 -> "0.83", 100 -> "100", -0.001 -> "0", 1/8 -> "0.13".
    """
    hundredths = Fraction(value) * 100
    magnitude = math.floor(abs(hundredths) + Fraction(1, 2))
    sign = "-" if hundredths < 0 and magnitude > 0 else ""
    whole, cents = divmod(magnitude, 100)
    return sign + f"{whole}.{cents:02d}".rstrip("0").rstrip(".")


def company_names(rng: random.Random, count: int) -> tuple[str, ...]:
    """``count`` distinct syllable-blend names, none contained in another (case-insensitive), so a name
    never shows up inside a question that mentions a different company."""
    names: list[str] = []
    while len(names) < count:
        middle = rng.choice(NAME_MIDDLES) if rng.random() < 0.5 else ""
        name = rng.choice(NAME_STARTS) + middle + rng.choice(NAME_ENDS)
        if not any(name.lower() in other.lower() or other.lower() in name.lower() for other in names):
            names.append(name)
    return tuple(names)


def generate_table(table_id: str, rng: random.Random, n_entities: int | None = None,
                   n_metrics: int | None = None, whole_numbers: bool = False) -> SyntheticTable:
    """A random table with 2-3 companies (or ``n_entities``), 2-3 metrics (or ``n_metrics``) and 3 years.

    Each company gets a base revenue of 30-95 $ million (few digits keep prompts short) and a yearly
    growth of -8 %..+20 %; each metric is a company-specific share of revenue (``METRIC_REVENUE_SHARE``)
    with ±10 % yearly noise. Every value is at least 1.0, so ratios are always defined. ``whole_numbers``
    rounds every value to a whole $ million (same random draws, so the layout of the table is unchanged).
    """
    n_entities = n_entities if n_entities is not None else rng.randint(2, 3)
    n_metrics = n_metrics if n_metrics is not None else rng.randint(2, 3)
    if not (2 <= n_entities and 2 <= n_metrics <= len(METRIC_REVENUE_SHARE)):
        raise ValueError(f"a table needs >= 2 companies and 2..{len(METRIC_REVENUE_SHARE)} metrics, "
                         f"got {n_entities} and {n_metrics}")
    entities = company_names(rng, n_entities)
    chosen = set(rng.sample(sorted(METRIC_REVENUE_SHARE), n_metrics))
    metrics = tuple(m for m in METRIC_REVENUE_SHARE if m in chosen)  # canonical order: revenue first
    first_year = rng.choice(FIRST_YEARS)
    years = tuple(range(first_year, first_year + YEARS_PER_TABLE))
    tenths: dict[tuple[str, str, int], int] = {}
    for entity in entities:
        revenue = rng.uniform(30.0, 95.0)
        shares = {m: rng.uniform(*METRIC_REVENUE_SHARE[m]) for m in metrics}
        for year in years:
            for metric in metrics:
                noise = 1.0 if metric == "revenue" else rng.uniform(0.9, 1.1)
                value = revenue * shares[metric] * noise
                tenths[(entity, metric, year)] = max(10, round(value) * 10 if whole_numbers else round(value * 10))
            revenue *= 1.0 + rng.uniform(-0.08, 0.2)
    return SyntheticTable(table_id=table_id, entities=entities, metrics=metrics, years=years, tenths=tenths)
