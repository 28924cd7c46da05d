"""SQL execution match: Spider comparison semantics and read-only safety on small sqlite files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from clarifylab.errors import DataNotFoundError
from clarifylab.metrics.sql_execution import (
    MultipleStatementsError,
    QueryFailedError,
    QueryRejectedError,
    compare_execution,
    execution_match,
    has_top_level_order_by,
    parse_read_only_query,
    rows_match,
    run_read_only_query,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def singers_db(tmp_path) -> Path:
    """A small database written once, then only ever opened read-only by the code under test."""
    path = tmp_path / "singers.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, rating REAL);
            INSERT INTO singer VALUES (1, 'Ana', 'France', 30, 4.0), (2, 'Bo', 'Spain', 25, 3.5),
                                      (3, 'Cy', 'France', 41, 4.5), (4, 'Di', 'Spain', 25, 3.0);
            """
        )
    connection.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gold_order_by_makes_comparison_order_sensitive(singers_db):
    gold = "SELECT name FROM singer ORDER BY age DESC"
    result = compare_execution("SELECT name FROM singer", gold, singers_db)
    assert result.score == 0.0 and result.ordered
    assert "different order" in result.reason
    assert execution_match("SELECT name FROM singer ORDER BY age DESC", gold, singers_db) == 1.0


def test_unordered_gold_accepts_permuted_rows(singers_db):
    result = compare_execution("SELECT name FROM singer ORDER BY name DESC", "SELECT name FROM singer", singers_db)
    assert (result.score, result.reason, result.ordered) == (1.0, "match", False)


def test_rows_are_compared_as_multisets(singers_db):
    gold = "SELECT age FROM singer"  # 30, 25, 41, 25
    assert execution_match("SELECT DISTINCT age FROM singer", gold, singers_db) == 0.0
    assert execution_match("SELECT age FROM singer WHERE age = 25 UNION ALL SELECT age FROM singer WHERE age <> 25",
                           gold, singers_db) == 1.0


def test_integral_floats_equal_ints_and_float_noise_is_ignored(singers_db):
    assert execution_match("SELECT count(*) * 1.0 FROM singer", "SELECT count(*) FROM singer", singers_db) == 1.0
    assert execution_match("SELECT 0.1 + 0.2", "SELECT 0.3", singers_db) == 1.0
    assert execution_match("SELECT 0.31", "SELECT 0.3", singers_db) == 0.0


def test_wrong_result_and_failing_prediction_score_zero_with_a_reason(singers_db):
    gold = "SELECT name FROM singer WHERE country = 'France'"
    wrong = compare_execution("SELECT name FROM singer WHERE country = 'Spain'", gold, singers_db)
    assert wrong.score == 0.0 and wrong.reason.startswith("different result")
    missing_column = compare_execution("SELECT nickname FROM singer", gold, singers_db)
    assert missing_column.score == 0.0 and "no such column" in missing_column.reason
    garbage = compare_execution("this is not sql at all", gold, singers_db)
    assert garbage.score == 0.0 and garbage.reason.startswith("predicted query rejected")


@pytest.mark.parametrize(
    "attack",
    [
        "DROP TABLE singer",
        "UPDATE singer SET age = 0",
        "INSERT INTO singer VALUES (9, 'X', 'Y', 1, 1.0)",
        "ATTACH DATABASE 'other.sqlite' AS other",
        "PRAGMA user_version = 7",
        "SELECT name FROM singer; DROP TABLE singer",
        "WITH x AS (SELECT 1) DELETE FROM singer",
    ],
)
def test_writes_score_zero_and_leave_the_file_unchanged(singers_db, attack):
    before = sha256(singers_db)
    result = compare_execution(attack, "SELECT name FROM singer", singers_db)
    assert result.score == 0.0 and result.reason.startswith("predicted query rejected")
    assert sha256(singers_db) == before
    assert not (singers_db.parent / "other.sqlite").exists()


@pytest.mark.parametrize("write", ["DELETE FROM singer", "UPDATE singer SET age = 0", "DROP TABLE singer",
                                   "ATTACH DATABASE 'other.sqlite' AS other"])
def test_connection_itself_refuses_writes_when_validation_is_bypassed(singers_db, write):
    before = sha256(singers_db)
    with pytest.raises(QueryFailedError, match="not authorized"):
        run_read_only_query(write, singers_db)
    assert sha256(singers_db) == before


def test_runaway_recursive_query_is_interrupted_near_the_timeout(singers_db):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    start = time.monotonic()
    result = compare_execution(endless, "SELECT count(*) FROM singer", singers_db, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert result.score == 0.0 and "timed out" in result.reason
    assert elapsed < 5.0


def test_row_limit_fails_instead_of_truncating(singers_db):
    result = compare_execution("SELECT name FROM singer", "SELECT name FROM singer LIMIT 2", singers_db, max_rows=3)
    assert result.score == 0.0 and "max_rows=3" in result.reason


def test_unusable_gold_scores_zero_and_missing_database_raises(singers_db, tmp_path):
    result = compare_execution("SELECT 1", "SELECT * FROM no_such_table", singers_db)
    assert result.score == 0.0 and result.reason.startswith("gold query unusable")
    with pytest.raises(DataNotFoundError, match="missing.sqlite"):
        execution_match("SELECT 1", "SELECT 1", tmp_path / "missing.sqlite")


def test_top_level_order_by_detection():
    assert has_top_level_order_by(parse_read_only_query("SELECT a FROM t ORDER BY a"))
    assert has_top_level_order_by(parse_read_only_query("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1"))
    assert has_top_level_order_by(parse_read_only_query("(SELECT a FROM t ORDER BY a)"))
    assert not has_top_level_order_by(parse_read_only_query("SELECT a FROM (SELECT a FROM t ORDER BY a)"))
    assert not has_top_level_order_by(parse_read_only_query("WITH s AS (SELECT a FROM t ORDER BY a) SELECT a FROM s"))
    with pytest.raises(QueryRejectedError, match="one statement"):
        parse_read_only_query("SELECT 1; SELECT 2")


@pytest.mark.data
def test_spider_gold_query_matches_itself_on_the_real_database():
    data_dir = Path(os.environ.get("CLARIFYLAB_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    db_path = data_dir / "spider" / "database" / "concert_singer" / "concert_singer.sqlite"
    if not db_path.is_file():
        pytest.skip(f"Spider database not found at {db_path} (set CLARIFYLAB_DATA_DIR to the data folder)")
    before = sha256(db_path)
    gold = "SELECT name, country, age FROM singer ORDER BY age DESC"
    assert execution_match(gold, gold, db_path) == 1.0
    assert execution_match("SELECT name, country, age FROM singer", gold, db_path) == 0.0
    assert execution_match("SELECT count(*) FROM singer", "SELECT count(*) FROM singer", db_path) == 1.0
    assert sha256(db_path) == before


def test_several_statements_are_rejected_with_their_own_code(singers_db):
    with pytest.raises(MultipleStatementsError, match="expected one statement, found 2"):
        parse_read_only_query("SELECT 1; SELECT 2")
    result = compare_execution("SELECT name FROM singer; DROP TABLE singer", "SELECT name FROM singer", singers_db)
    assert (result.score, result.code) == (0.0, "multiple_statements")
    assert compare_execution("SELECT name FROM singer", "SELECT name FROM singer", singers_db).code == "match"


def test_rows_match_with_and_without_column_order():
    gold = [(1, "Ana"), (2, "Bo")]
    assert not rows_match([("Ana", 1), ("Bo", 2)], gold, ordered=False)
    assert rows_match([("Bo", 2), ("Ana", 1)], gold, ordered=False, ignore_column_order=True)
    assert not rows_match([("Bo", 2), ("Ana", 1)], gold, ordered=True, ignore_column_order=True)   # row order kept
    assert rows_match([("Ana", 1), ("Bo", 2)], gold, ordered=True, ignore_column_order=True)
    # Same column value sets, but no permutation pairs them row by row: {1, 2} x {Ana, Bo} swapped within rows.
    assert not rows_match([("Bo", 1), ("Ana", 2)], gold, ordered=False, ignore_column_order=True)
    assert not rows_match([("Ana", 1, 1), ("Bo", 2, 2)], gold, ordered=False, ignore_column_order=True)
    assert rows_match([], [], ordered=False, ignore_column_order=True)


def test_column_order_option_of_compare_execution(singers_db):
    gold = "SELECT name, age FROM singer WHERE country = 'France'"
    swapped = "SELECT age, name FROM singer WHERE country = 'France'"
    assert compare_execution(swapped, gold, singers_db).code == "different_result"
    assert compare_execution(swapped, gold, singers_db, ignore_column_order=True).score == 1.0
    ordered_gold = gold + " ORDER BY age"
    assert compare_execution(swapped + " ORDER BY name DESC", ordered_gold, singers_db,
                             ignore_column_order=True).code == "wrong_order"
