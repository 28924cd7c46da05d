"""SQL execution match on Spider sqlite databases (Yu et al., 2018), as AmbigSQL scores trajectories (ACT App. D).

A predicted query matches when it returns the same result as the gold query on the same database:
rows are compared as multisets (``collections.Counter`` of row tuples), and in order only when the
gold query has a top-level ORDER BY (Spider's rule). Values are normalised first: a float with an
integral value becomes an int (``1.0 == 1``) and other floats are rounded to 12 significant digits,
so summation-order noise in AVG/SUM does not count as a difference. Column order matters by default;
``ignore_column_order=True`` gives the Spider test-suite evaluator's rule (``result_eq``): the results
also match when some permutation of the predicted columns matches (:func:`rows_match`).

Safety (a model's SQL is untrusted; the database must never change):

1. sqlglot parses the query (sqlite dialect) and rejects anything that is not exactly one
   SELECT / set operation / parenthesised query, or that contains a write, DDL, PRAGMA, ATTACH or
   transaction node anywhere;
2. the database is opened read-only (``file:...?mode=ro`` URI) with ATTACH disabled
   (``SQLITE_LIMIT_ATTACHED = 0``) and a 10 MB cap on strings/blobs;
3. an authorizer allows only SELECT, READ, FUNCTION and RECURSIVE actions (defence in depth);
4. a progress handler interrupts a query after ``timeout_s`` seconds of wall time and at most
   ``max_rows`` rows are fetched (more is a failure, never a silent truncation).

A query that is rejected (several statements included: ``SELECT ...; DROP TABLE t`` is never
executed), errors, times out or returns too many rows scores 0, and :class:`ExecutionMatch` says why
(``reason``) and in which category (``code``, one of :data:`OUTCOME_CODES`). A missing database file
raises :class:`DataNotFoundError`.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from clarifylab.errors import DataNotFoundError

log = logging.getLogger(__name__)

# Statement kinds that must not appear anywhere in an evaluated query.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Drop, exp.Create, exp.Alter, exp.TruncateTable,
    exp.Command, exp.Pragma, exp.Attach, exp.Detach, exp.Transaction, exp.Commit, exp.Rollback,
)
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                              sqlite3.SQLITE_RECURSIVE})
_MAX_VALUE_BYTES = 10_000_000
_PROGRESS_EVERY_N_OPS = 1_000
_SIGNIFICANT_DIGITS = 12
_MAX_COLUMN_PERMUTATIONS = 10_000
OUTCOME_CODES = ("match", "multiple_statements", "rejected", "failed", "wrong_order", "different_result",
                 "gold_unusable")
"""Categories of :attr:`ExecutionMatch.code`; only ``match`` scores 1."""

Row = tuple[object, ...]


class QueryRejectedError(ValueError):
    """The SQL is not a single read-only query (or does not parse); it was never executed."""


class MultipleStatementsError(QueryRejectedError):
    """The SQL holds more than one statement (``SELECT ...; DROP TABLE t``)."""


class QueryFailedError(RuntimeError):
    """The query ran but errored, timed out or returned more than ``max_rows`` rows."""


@dataclass(frozen=True)
class ExecutionMatch:
    """Outcome of comparing a predicted query with the gold query.

    Attributes:
        score: 1.0 when the results match, else 0.0.
        reason: "match", or why the score is 0 (rejected / failed / timed out / different result).
        ordered: True when rows were compared in order (the gold query has a top-level ORDER BY).
        code: the category of ``reason``, one of :data:`OUTCOME_CODES` (for counting).
    """

    score: float
    reason: str
    ordered: bool = False
    code: str = "match"


def parse_read_only_query(sql: str) -> exp.Query:
    """Parse ``sql`` (sqlite dialect) and return it if it is exactly one read-only query.

    Raises:
        MultipleStatementsError: several statements (a :class:`QueryRejectedError`).
        QueryRejectedError: empty SQL, parse error, a non-SELECT statement, or a
            write/DDL/PRAGMA/ATTACH/transaction node anywhere in the tree.
    """
    if not sql or not sql.strip():
        raise QueryRejectedError("empty SQL")
    try:
        statements = [statement for statement in sqlglot.parse(sql, read="sqlite") if statement is not None]
    except SqlglotError as error:
        raise QueryRejectedError(f"does not parse as SQLite: {str(error).splitlines()[0]}") from error
    if len(statements) != 1:
        error_type = MultipleStatementsError if len(statements) > 1 else QueryRejectedError
        raise error_type(f"expected one statement, found {len(statements)}")
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        raise QueryRejectedError(f"not a SELECT query ({type(statement).__name__})")
    forbidden = statement.find(*_FORBIDDEN_NODES)
    if forbidden is not None:
        raise QueryRejectedError(f"contains a forbidden {type(forbidden).__name__} clause")
    return statement


def has_top_level_order_by(query: exp.Query) -> bool:
    """True when the outermost query (through enclosing parentheses) has an ORDER BY.

    ``SELECT ... FROM (SELECT ... ORDER BY x)`` and ORDER BY inside a CTE do not count.
    """
    node: exp.Expression = query
    while True:
        if node.args.get("order"):
            return True
        if not isinstance(node, exp.Subquery):
            return False
        node = node.this


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
    """sqlite authorizer: deny every action that is not part of reading."""
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def _normalize_value(value: object) -> object:
    """1.0 -> 1; other floats to 12 significant digits; everything else unchanged."""
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
    return value


def run_read_only_query(sql: str, db_path: str | Path, timeout_s: float = 5.0, max_rows: int = 100_000) -> list[Row]:
    """Execute ``sql`` on a read-only connection to ``db_path`` and return its normalised rows.

    The caller is expected to have validated ``sql`` with :func:`parse_read_only_query`; the
    connection itself also refuses writes (read-only URI, authorizer, no ATTACH).

    Raises:
        DataNotFoundError: ``db_path`` is not a file.
        QueryFailedError: sqlite error, authorizer denial, more than ``timeout_s`` seconds, or
            more than ``max_rows`` rows.
    """
    path = Path(db_path)
    if not path.is_file():
        raise DataNotFoundError(f"SQLite database {path} not found: check paths.data_dir (env CLARIFYLAB_DATA_DIR) "
                                f"and that the Spider database/<db_id>/<db_id>.sqlite files are there")
    deadline = time.monotonic() + timeout_s
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s,
                                 isolation_level=None)
    with closing(connection):
        # Spider has a few non-UTF-8 strings; decode leniently rather than failing the query.
        connection.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
        connection.set_authorizer(_authorize)
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_EVERY_N_OPS)
        try:
            rows = connection.execute(sql).fetchmany(max_rows + 1)
        except (sqlite3.Error, sqlite3.Warning) as error:
            if time.monotonic() > deadline:
                raise QueryFailedError(f"timed out after {timeout_s:g} s") from error
            raise QueryFailedError(f"sqlite error: {error}") from error
    if len(rows) > max_rows:
        raise QueryFailedError(f"returned more than max_rows={max_rows} rows")
    return [tuple(_normalize_value(value) for value in row) for row in rows]


def rows_match(predicted: list[Row], gold: list[Row], ordered: bool, ignore_column_order: bool = False) -> bool:
    """True when the results are equal: as lists when ``ordered``, else as multisets of rows.

    With ``ignore_column_order`` (Spider test-suite ``result_eq``), they are also equal when some permutation
    ``perm`` of the predicted columns gives ``[tuple(row[perm[i]] for i in range(k)) for row in predicted]``
    equal to ``gold``; only permutations mapping each gold column to a predicted column with the same set of
    values are tried (no match is lost: equal results have equal column value sets), at most 10,000 of them.
    """
    if ordered and predicted == gold or not ordered and Counter(predicted) == Counter(gold):
        return True
    if not ignore_column_order or not gold or len(predicted) != len(gold):
        return False
    width = len(gold[0])
    if any(len(row) != width for row in predicted):
        return False
    gold_sets = [{row[i] for row in gold} for i in range(width)]
    predicted_sets = [{row[j] for row in predicted} for j in range(width)]
    options = [[j for j in range(width) if predicted_sets[j] == gold_sets[i]] for i in range(width)]
    tried = 0
    for perm in itertools.product(*options):
        if len(set(perm)) != width:
            continue
        permuted = [tuple(row[j] for j in perm) for row in predicted]
        if ordered and permuted == gold or not ordered and Counter(permuted) == Counter(gold):
            return True
        tried += 1
        if tried >= _MAX_COLUMN_PERMUTATIONS:
            return False
    return False


def compare_execution(
    predicted_sql: str,
    gold_sql: str,
    db_path: str | Path,
    timeout_s: float = 5.0,
    max_rows: int = 100_000,
    ignore_column_order: bool = False,
) -> ExecutionMatch:
    """Execute both queries read-only on ``db_path`` and compare their results (module docstring).

    Args:
        predicted_sql: the model's query (untrusted).
        gold_sql: the reference query; if it is rejected or fails the score is 0 and a warning is logged.
        db_path: the sqlite file, e.g. ``<data_dir>/spider/database/<db_id>/<db_id>.sqlite``.
        timeout_s: wall-clock limit per query, seconds.
        max_rows: most rows fetched per query; a larger result is a failure.
        ignore_column_order: also accept a permutation of the predicted columns (:func:`rows_match`).
    """
    try:
        gold_query = parse_read_only_query(gold_sql)
        gold_rows = run_read_only_query(gold_sql, db_path, timeout_s, max_rows)
    except (QueryRejectedError, QueryFailedError) as error:
        log.warning("gold SQL on %s cannot be evaluated (%s): %s", db_path, error, gold_sql)
        return ExecutionMatch(0.0, f"gold query unusable: {error}", code="gold_unusable")
    ordered = has_top_level_order_by(gold_query)
    try:
        parse_read_only_query(predicted_sql)
    except QueryRejectedError as error:
        code = "multiple_statements" if isinstance(error, MultipleStatementsError) else "rejected"
        return ExecutionMatch(0.0, f"predicted query rejected: {error}", ordered, code)
    try:
        predicted_rows = run_read_only_query(predicted_sql, db_path, timeout_s, max_rows)
    except QueryFailedError as error:
        return ExecutionMatch(0.0, f"predicted query failed: {error}", ordered, "failed")

    if rows_match(predicted_rows, gold_rows, ordered, ignore_column_order):
        return ExecutionMatch(1.0, "match", ordered)
    if ordered and rows_match(predicted_rows, gold_rows, False, ignore_column_order):
        return ExecutionMatch(0.0, "same rows in a different order (gold orders its rows)", ordered, "wrong_order")
    return ExecutionMatch(0.0, f"different result ({len(predicted_rows)} predicted rows, {len(gold_rows)} gold rows)",
                          ordered, "different_result")


def execution_match(
    predicted_sql: str,
    gold_sql: str,
    db_path: str | Path,
    timeout_s: float = 5.0,
    max_rows: int = 100_000,
    ignore_column_order: bool = False,
) -> float:
    """1.0 when ``predicted_sql`` returns the gold result on ``db_path``, else 0.0 (see :func:`compare_execution`)."""
    return compare_execution(predicted_sql, gold_sql, db_path, timeout_s, max_rows, ignore_column_order).score
