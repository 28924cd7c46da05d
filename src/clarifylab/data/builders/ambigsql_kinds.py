"""The three AmbigSQL ambiguity kinds (ACT App. C.1) and the seeded choice of one per Spider request.

- ``information``: what to return is left open ("Tell me about the singers." for ``SELECT count(*) ...``);
- ``population``: which rows / which entity is left open ("Which ones live in Indiana?");
- ``presentation``: how results are ordered or cut is left open ("Show name and age of all singers."
  for ``... ORDER BY age DESC``). Only a query whose outermost SELECT orders or limits its rows has a
  presentation to leave open (:func:`presents_results`, decided with sqlglot on the gold SQL).

ACT App. C.1: a query that manipulates the presentation of results gets the presentation kind; any other
query gets information or population at random. :func:`choose_kind` does this with a per-request seeded
draw (stable whatever the order or subset of requests), and ``presentation_rate`` < 1 lets some
presentation-eligible queries draw from the other two kinds instead.
"""

from __future__ import annotations

import enum

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from clarifylab.data.splits import unit_hash


class AmbiguityKind(str, enum.Enum):
    """What the ambiguous request leaves unsaid."""

    INFORMATION = "information"
    POPULATION = "population"
    PRESENTATION = "presentation"


def _parse(sql: str):  # noqa: ANN202 - sqlglot expression or None

    try:
        return sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError:
        return None


def presents_results(sql: str) -> bool:
    """True when the outermost query (a SELECT or a set operation, through enclosing parentheses) has an
    ORDER BY or a LIMIT. Subqueries do not count: ``WHERE age = (SELECT max(age) ... LIMIT 1)`` picks a
    population, it does not present results. A query sqlglot cannot parse counts as False."""
    node = _parse(sql)
    while node is not None:
        if node.args.get("order") is not None or node.args.get("limit") is not None:
            return True
        node = node.this if isinstance(node, exp.Subquery) else None
    return False


def query_tables(sql: str) -> list[str]:
    """Names of the tables ``sql`` reads, in order of first appearance (empty when it does not parse)."""
    node = _parse(sql)
    if node is None:
        return []
    return list(dict.fromkeys(table.name for table in node.find_all(exp.Table) if table.name))


def choose_kind(item_id: str, sql: str, seed: int = 0, presentation_rate: float = 1.0) -> AmbiguityKind:
    """The ambiguity kind for one request, fixed by ``(item_id, seed)``.

    Args:
        item_id: the request's id (``dev-00012``).
        sql: its gold SQL.
        seed: the build's seed.
        presentation_rate: probability that a query which :func:`presents_results` gets the presentation
            kind (1.0 = always, as in ACT App. C.1); otherwise, and for every other query, information or
            population with probability 1/2 each.
    """
    if presents_results(sql) and unit_hash(item_id, seed, "ambigsql/presentation") < presentation_rate:
        return AmbiguityKind.PRESENTATION
    if unit_hash(item_id, seed, "ambigsql/kind") < 0.5:
        return AmbiguityKind.INFORMATION
    return AmbiguityKind.POPULATION
