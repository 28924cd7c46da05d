"""Task heuristics H: hand-computed scores per task, SQL extraction, the registry's errors."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.metrics.task_heuristics import (
    EmbeddingSimilarityHeuristic,
    extract_sql,
    heuristic_for,
    outcome_references,
    pacific_candidates,
    score_outcome,
    score_outcomes,
    score_turns,
)


def make(task: str, action: Action = Action.ANSWER, response: str = "12.5", goal: tuple[str, ...] = ("12.5",),
         clarifications: tuple[Clarification, ...] = (), meta: dict | None = None, id: str = "x") -> Example:
    return Example(id=id, task=task, context="", history=[Turn("user", "q?")], response=response, action=action,
                   goal=list(goal), clarifications=list(clarifications), meta=meta or {})


# ------------------------------------------------------------------------------------------- synthetic_tables

def test_synthetic_numeric_reference_is_exact_match_on_the_last_number():
    example = make("synthetic_tables", goal=("12.5",))
    assert score_outcome("synthetic_tables", "The answer is 12.50.", example) == 1.0
    assert score_outcome("synthetic_tables", "In 2020 it was 13.", example) == 0.0
    assert score_outcome("synthetic_tables", None, example) == 0.0  # no outcome


def test_synthetic_text_reference_is_bag_of_words_f1():
    question = "Which year do you mean?"
    example = make("synthetic_tables", Action.CLARIFY, response=question,
                   clarifications=(Clarification("2020", "12.5"),))
    # {which, year, do, you, mean} vs {which, year}: P = 1, R = 2/5 -> F1 = 4/7 = 0.57 (rounded to 2 decimals).
    assert score_turns("synthetic_tables", ["Which year?", question, "12.5"], [example] * 3) == [0.57, 1.0, 0.0]


def test_outcome_references_follow_the_interpretation():
    example = make("abg_coqa", Action.CLARIFY, response="Which one?", goal=("red", "blue"),
                   clarifications=(Clarification("the car", "red"), Clarification("the bike", "blue")))
    assert outcome_references(example, 1) == ["blue"]
    assert outcome_references(make("x", goal=("a", "b")), 0) == ["a", "b"]  # answer example: every alternative
    with pytest.raises(DataFormatError, match="empty goal"):
        outcome_references(make("x", goal=()), 0)


# ------------------------------------------------------------------------------------------- PACIFIC

def pacific_example(answer, scale: str, answer_type: str, rendered: str) -> Example:
    meta = {"goal_answer": answer, "goal_scale": scale, "goal_answer_type": answer_type}
    return make("pacific", response=rendered, goal=(rendered,), meta=meta)


def test_pacific_scores_the_raw_gold_with_scale_and_reads_derivations():
    arithmetic = pacific_example(11.76, "percent", "arithmetic", "0.6/5.1 = 11.76%")
    assert score_outcome("pacific", "0.6/5.1 = 11.76%", arithmetic) == 1.0   # rendered gold: the result after '='
    assert score_outcome("pacific", "11.76%", arithmetic) == 1.0
    assert score_outcome("pacific", "0.1176", arithmetic) == 1.0             # an unscaled ratio (TAT-QA rule 3)
    assert score_outcome("pacific", "11.7%", arithmetic) == 0.0              # arithmetic: F1 = EM
    negative = pacific_example(["(87.4)"], "thousand", "span", "(87.4) thousand")
    assert score_outcome("pacific", "(87.4) thousand", negative) == 1.0      # scale word read as the predicted scale
    assert score_outcome("pacific", "-87,400", negative) == 1.0
    spans = pacific_example(["$5.1 million", "$0.6 million"], "", "multi-span", "$5.1 million, $0.6 million")
    assert score_outcome("pacific", "$0.6 million, $5.1 million", spans) == 1.0


def test_pacific_rendered_gold_scores_one_against_its_raw_gold():
    from clarifylab.data.loaders.pacific import render_answer

    # Both used to score 0: "$15.5 million" was scaled by its own word and the scale field (1.55e13), and
    # "(59.9)%" (how "(59.9)" with scale percent is rendered) was read as -59.9 against the gold's -0.599.
    for answer, scale in ((["$15.5 million"], "million"), (["(59.9)"], "percent"), (["-0"], "")):
        rendered = render_answer(answer, "span", "", scale)
        example = pacific_example(answer, scale, "span", rendered)
        assert score_outcome("pacific", rendered, example) == 1.0, rendered
    assert score_outcome("pacific", "-59.9%", pacific_example(["(59.9)"], "percent", "span", "(59.9)%")) == 1.0
    assert score_outcome("pacific", "0", pacific_example(["-0"], "", "span", "-0")) == 1.0


def test_pacific_clarifying_question_reference_is_plain_text():
    example = make("pacific", Action.CLARIFY, response="Which plans do you mean?", goal=("5.1 million",),
                   clarifications=(Clarification("benefit plans", "5.1 million"),),
                   meta={"goal_answer": ["5.1"], "goal_scale": "million", "goal_answer_type": "span"})
    assert score_turns("pacific", ["Which plans do you mean?", "5.1 million"], [example] * 2) == [1.0, 0.0]
    assert score_outcome("pacific", "5.1 million", example) == 1.0


def test_pacific_candidates():
    assert pacific_candidates("a = 3 million", "arithmetic") == [
        ("a = 3 million", ""), ("a = 3", "million"), ("3 million", ""), ("3", "million")]


# ------------------------------------------------------------------------------------------- Abg-CoQA

class LetterCountSimilarity:
    """Cosine of a-z letter-count vectors; records every call's batch size."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    @staticmethod
    def vector(text: str) -> np.ndarray:
        counts = np.zeros(26)
        for letter in text.lower():
            if "a" <= letter <= "z":
                counts[ord(letter) - ord("a")] += 1
        return counts / np.linalg.norm(counts)

    def score(self, predictions, references):
        self.calls.append(len(predictions))
        return [float(self.vector(p) @ self.vector(r)) for p, r in zip(predictions, references)]


def test_abg_coqa_embedding_similarity_is_batched_and_maximised_over_alternatives():
    similarity = LetterCountSimilarity()
    heuristic = EmbeddingSimilarityHeuristic(similarity)
    example = make("abg_coqa", goal=("ab", "b"))
    # "a" vs "ab": 1/sqrt(2); "a" vs "b": 0 -> max 1/sqrt(2). "ba" vs "ab": 1.
    scores = score_outcomes("abg_coqa", ["a", "ba"], [example, example], [0, 0], heuristic)
    assert scores == pytest.approx([2 ** -0.5, 1.0])
    assert similarity.calls == [4]  # all 2 x 2 (prediction, reference) pairs in one encode batch


# ------------------------------------------------------------------------------------------- AmbigSQL

def test_extract_sql():
    assert extract_sql("Here:\n```sql\nSELECT name FROM singer;\n```\nDone.") == "SELECT name FROM singer"
    assert extract_sql("```\nselect 1\n```") == "select 1"
    assert extract_sql("Sure. SELECT count(*) FROM singer; Hope it helps.") == "SELECT count(*) FROM singer"
    assert extract_sql("SELECT a FROM t\n\nThis lists a.") == "SELECT a FROM t"
    assert extract_sql("Which singers do you mean?") == "Which singers do you mean?"


@pytest.fixture()
def spider_dir(tmp_path):
    db = tmp_path / "spider" / "database" / "concert" / "concert.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE singer (name TEXT, age INT)")
        connection.executemany("INSERT INTO singer VALUES (?, ?)", [("Ann", 30), ("Bo", 40)])
    return tmp_path


def test_ambigsql_execution_match(spider_dir):
    gold = "SELECT name FROM singer WHERE age > 35"
    example = make("ambigsql", Action.CLARIFY, response="Older than what age?", goal=(gold,),
                   clarifications=(Clarification("older than 35", gold),), meta={"db_id": "concert"})
    predictions = ["```sql\nSELECT name FROM singer WHERE age >= 36\n```", "SELECT name FROM singer",
                   "Which singers?", "DROP TABLE singer"]
    assert score_outcomes("ambigsql", predictions, [example] * 4, [0] * 4, data_dir=spider_dir) == [1.0, 0.0, 0.0, 0.0]
    # Turn level: the gold response is a question, which cannot be executed -> 0 whatever the prediction.
    assert score_turns("ambigsql", [gold], [example], data_dir=spider_dir) == [0.0]
    with pytest.raises(DataFormatError, match="db_id"):
        score_outcome("ambigsql", gold, make("ambigsql", goal=(gold,)), data_dir=spider_dir)
    with pytest.raises(ConfigError, match="data_dir"):
        score_outcome("ambigsql", gold, example)


def test_extract_sql_keeps_a_second_statement_so_it_is_rejected():
    # The old extractor cut at the first ";", so "SELECT ...; DROP TABLE t" was scored as the SELECT alone.
    assert extract_sql("SELECT name FROM singer; DROP TABLE singer") == "SELECT name FROM singer;\nDROP TABLE singer"
    assert extract_sql("```sql\nSELECT 1;\n-- done\nselect 2;\n```") == "SELECT 1;\n-- done\nselect 2"
    assert extract_sql("SELECT a FROM t;\n\nDELETE FROM t;") == "SELECT a FROM t;\nDELETE FROM t"
    assert extract_sql("SELECT a FROM t; Update: it now lists a.") == "SELECT a FROM t"    # prose, not a verb
    assert extract_sql("```sql\nSELECT 1; -- one query\n```") == "SELECT 1"


def test_ambigsql_second_statement_scores_zero_and_is_counted(spider_dir):
    gold = "SELECT name FROM singer WHERE age > 35"
    example = make("ambigsql", goal=(gold,), meta={"db_id": "concert"})
    heuristic = heuristic_for("ambigsql", data_dir=spider_dir)
    predictions = [f"{gold}; DROP TABLE singer", f"```sql\n{gold};\nSELECT 1;\n```", gold, "SELECT age FROM singer"]
    assert heuristic.score(predictions, [[gold]] * 4, [example] * 4) == [0.0, 0.0, 1.0, 0.0]
    assert heuristic.last_outcomes == ["multiple_statements", "multiple_statements", "match", "different_result"]
    heuristic.score(["Which singers?"], [["Which singers?"]], [example])       # a question reference: not executed
    assert heuristic.details() == {"different_result": 1, "match": 1, "multiple_statements": 2,
                                   "no_query_reference": 1}
    assert sqlite3.connect(spider_dir / "spider/database/concert/concert.sqlite").execute(
        "SELECT count(*) FROM singer").fetchone() == (2,)                       # nothing was dropped


def test_ambigsql_column_order_option(spider_dir):
    gold = "SELECT name, age FROM singer"
    example = make("ambigsql", goal=(gold,), meta={"db_id": "concert"})
    swapped = ["SELECT age, name FROM singer", "SELECT age, age FROM singer"]
    assert heuristic_for("ambigsql", data_dir=spider_dir).score(swapped, [[gold]] * 2, [example] * 2) == [0.0, 0.0]
    spider = heuristic_for("ambigsql", data_dir=spider_dir, ignore_column_order=True)
    assert spider.score(swapped, [[gold]] * 2, [example] * 2) == [1.0, 0.0]


# ------------------------------------------------------------------------------------------- registry

def test_unknown_task_and_mixed_batches_fail_loudly():
    with pytest.raises(ConfigError, match="no task heuristic for task 'spider2'.*synthetic_tables"):
        heuristic_for("spider2")
    with pytest.raises(ValueError, match="score one task at a time"):
        score_outcomes("pacific", ["1"], [make("synthetic_tables")], [0])
