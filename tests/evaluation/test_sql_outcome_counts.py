"""An AmbigSQL evaluation reports why the SQL scorer scored what it did: a second statement scores 0 and is
counted at the turn and trajectory level (metrics.json, results.md, the report's columns)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.user_simulator import OracleUserSimulator
from clarifylab.evaluation.evaluator import evaluate_policy
from clarifylab.evaluation.outputs import write_eval_outputs
from clarifylab.evaluation.tables import REPORT_COLUMNS, shown_columns
from clarifylab.metrics.task_heuristics import heuristic_for

COUNT = "SELECT count(*) FROM teacher"
MATH = "SELECT name FROM teacher WHERE subject = 'math'"
ART = "SELECT name FROM teacher WHERE subject = 'art'"


def sql_example(id: str, gold: str | None = None) -> Example:
    common = dict(id=id, task="ambigsql", context="teacher(teacher_id, name, subject, age)",
                  meta={"db_id": "school"})
    if gold is None:
        return Example(**common, history=[Turn("user", "Which teachers teach my subject?")],
                       response="Which subject do you mean?", action=Action.CLARIFY, goal=[MATH],
                       clarifications=[Clarification("math", MATH), Clarification("art", ART)])
    return Example(**common, history=[Turn("user", f"How many teachers are there? ({id})")], response=gold,
                   action=Action.ANSWER, goal=[gold])


EXAMPLES = [sql_example("drop", COUNT), sql_example("right", COUNT), sql_example("ask")]
SCRIPT = {"drop": [f"{COUNT}; DROP TABLE teacher"],          # answers with a second statement: 0, counted
          "right": [COUNT],                                   # the gold query: match
          "ask": ["Which subject do you mean?", ART]}         # asks (no query reference), then the wrong subject


def test_a_second_statement_scores_zero_and_is_counted_per_level(tmp_path, build_spider_tree, scripted_policy):
    build_spider_tree(tmp_path / "data" / "spider")
    policy = scripted_policy(EXAMPLES, lambda example, turns: SCRIPT[example.id][len(turns) // 2])
    result = evaluate_policy(policy, EXAMPLES, HeuristicActionClassifier(), OracleUserSimulator(),
                             heuristic_options={"data_dir": str(tmp_path / "data")})
    h = {r.id: (r.turn_h, r.trajectory_h) for r in result.records}
    assert h == {"drop": (0.0, 0.0), "right": (1.0, 1.0), "ask": (0.0, 0.0)}
    s = result.summary
    assert (s["sql_multiple_statements_turn"], s["sql_multiple_statements_trajectory"]) == (1, 1)
    assert (s["sql_match_turn"], s["sql_match_trajectory"]) == (1, 1)
    # "ask": its first response is scored against the gold question (not a query); its outcome (the art
    # teachers) against the math goal of interpretation 0.
    assert (s["sql_no_query_reference_turn"], s["sql_different_result_trajectory"]) == (1, 1)
    assert (s["sql_different_result_turn"], s["sql_failed_trajectory"], s["sql_rejected_turn"]) == (0, 0, 0)
    assert sum(v for k, v in s.items() if k.startswith("sql_") and k.endswith("_turn")) == 3
    assert sum(v for k, v in s.items() if k.startswith("sql_") and k.endswith("_trajectory")) == 3
    db = tmp_path / "data/spider/database/school/school.sqlite"
    assert sqlite3.connect(db).execute("SELECT count(*) FROM teacher").fetchone() == (4,)   # nothing dropped

    metrics = write_eval_outputs(result, tmp_path / "run", title="sql")
    assert json.loads((tmp_path / "run/metrics.json").read_text())["sql_multiple_statements_trajectory"] == 1
    assert ("SQL scorer outcomes (execution match; only `match` scores 1): turn level: match 1, "
            "multiple_statements 1, no_query_reference 1; trajectory level: match 1, multiple_statements 1, "
            "different_result 1.") in (tmp_path / "run/results.md").read_text()
    assert {"sql_multiple_statements_turn", "sql_multiple_statements_trajectory"} <= set(
        shown_columns([metrics], REPORT_COLUMNS))


def test_a_passed_in_heuristic_counts_only_this_evaluations_calls(tmp_path, build_spider_tree, scripted_policy):
    build_spider_tree(tmp_path / "data" / "spider")
    heuristic = heuristic_for("ambigsql", data_dir=str(tmp_path / "data"))
    heuristic.score([f"{COUNT}; SELECT 1"], [[COUNT]], [EXAMPLES[0]])        # an earlier, unrelated call
    policy = scripted_policy(EXAMPLES[1:2], lambda example, turns: COUNT)
    s = evaluate_policy(policy, EXAMPLES[1:2], HeuristicActionClassifier(), OracleUserSimulator(),
                        heuristics={"ambigsql": heuristic}).summary
    assert (s["sql_multiple_statements_turn"], s["sql_match_turn"], s["sql_match_trajectory"]) == (0, 1, 1)


def test_tasks_without_outcome_codes_add_no_sql_columns(scripted_policy, synthetic_examples):
    policy = scripted_policy(synthetic_examples, lambda example, turns: example.goal[0])
    s = evaluate_policy(policy, synthetic_examples, HeuristicActionClassifier(), OracleUserSimulator()).summary
    assert not [k for k in s if k.startswith("sql_")]


# ------------------------------------------------------------------------ dataset.ignore_column_order -> the scorer

SWAPPED = "SELECT age, name FROM teacher WHERE subject = 'math'"   # the gold's columns in another order


def evaluate_config(tmp_path, ignore_column_order: bool):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from clarifylab.config import PROJECT_ROOT, register_resolvers
    from clarifylab.schemas import validate_config

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="evaluate", return_hydra_config=True,
                      overrides=["dataset=ambigsql", f"dataset.ignore_column_order={str(ignore_column_order).lower()}",
                                 f"paths.data_dir={tmp_path / 'data'}", "progress=false", "label=swapped"])
    HydraConfig.instance().set_config(cfg)
    validate_config(cfg)
    cfg.output_dir = str(tmp_path / f"run-{ignore_column_order}")
    return cfg


@pytest.mark.parametrize("ignore_column_order, expected", [(False, 0.0), (True, 1.0)])
def test_evaluate_passes_the_dataset_column_order_option_to_the_sql_scorer(
        tmp_path, build_spider_tree, scripted_policy, monkeypatch, ignore_column_order, expected):
    from clarifylab.evaluation import policy_eval

    build_spider_tree(tmp_path / "data" / "spider")
    example = Example(id="q", task="ambigsql", context="teacher(teacher_id, name, subject, age)",
                      history=[Turn("user", "Names and ages of the math teachers?")],
                      response="SELECT name, age FROM teacher WHERE subject = 'math'", action=Action.ANSWER,
                      goal=["SELECT name, age FROM teacher WHERE subject = 'math'"], meta={"db_id": "school"})
    cfg = evaluate_config(tmp_path, ignore_column_order)
    policy = scripted_policy([example], lambda e, turns: SWAPPED, cfg.dataset.instruction)
    monkeypatch.setattr(policy_eval, "load_dataset_split", lambda dataset, split, paths: [example])
    monkeypatch.setattr(policy_eval, "build_policy_backend", lambda cfg: (policy, {"model": "scripted", "source": "x"}))
    monkeypatch.setattr(policy_eval, "data_identity", lambda dataset, split: {"data_file": None, "data_sha256": None})
    metrics = policy_eval.run_policy_evaluation(cfg)
    assert (metrics["turn_h"], metrics["trajectory_h"]) == (expected, expected)
    assert (metrics["sql_match_trajectory"], metrics["sql_different_result_trajectory"]) == (expected, 1 - expected)
