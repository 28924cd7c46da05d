"""The on-policy trainers' success criterion: H built from the config (AmbigSQL's databases under
paths.data_dir) and the per-task success threshold."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.env.rollout import Trajectory
from clarifylab.errors import ConfigError
from clarifylab.training.task_success import SUCCESS_THRESHOLDS, success_threshold, trajectory_scorer


def test_thresholds_per_task_and_the_override():
    assert SUCCESS_THRESHOLDS == {"pacific": 0.9, "tatqa": 0.9, "synthetic_tables": 0.9, "ambigsql": 1.0,
                                  "wtq": 1.0, "abg_coqa": 0.7}
    assert success_threshold("abg_coqa") == 0.7 and success_threshold("abg_coqa", 0.5) == 0.5
    with pytest.raises(ConfigError, match="no success threshold for task 'other'.*trainer.threshold"):
        success_threshold("other")


def trajectory(outcome: str, hit_turn_limit: bool = False) -> Trajectory:
    sql = "SELECT count(*) FROM teacher"
    example = Example(id="a", task="ambigsql", context="Schema of school", history=[Turn("user", "How many?")],
                      response=sql, action=Action.ANSWER, goal=[sql], meta={"db_id": "school"})
    return Trajectory(example=example, interpretation=0, first_response=outcome, first_action=Action.ANSWER,
                      turns=[{"role": "assistant", "content": outcome}], actions=[Action.ANSWER], outcome=outcome,
                      n_clarifications=0, hit_turn_limit=hit_turn_limit)


def test_the_trajectory_scorer_runs_execution_match_on_the_configured_data_dir(tmp_path, build_spider_tree):
    build_spider_tree(tmp_path / "data" / "spider")
    batch = [trajectory("SELECT count(*) FROM teacher"), trajectory("SELECT name FROM teacher"),
             trajectory("SELECT count(*) FROM teacher", hit_turn_limit=True)]
    assert trajectory_scorer({"data_dir": str(tmp_path / "data")})(batch) == [1.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="needs data_dir"):  # what the old default scorer did on AmbigSQL
        trajectory_scorer(None)(batch)


def test_the_dataset_column_order_option_reaches_the_trainers_scorer(tmp_path, build_spider_tree):
    from clarifylab.training.task_success import heuristic_from_config

    build_spider_tree(tmp_path / "data" / "spider")
    gold, swapped = "SELECT name, age FROM teacher", "SELECT age, name FROM teacher"
    example = Example(id="a", task="ambigsql", context="Schema of school", history=[Turn("user", "Who and how old?")],
                      response=gold, action=Action.ANSWER, goal=[gold], meta={"db_id": "school"})
    batch = [Trajectory(example=example, interpretation=0, first_response=swapped, first_action=Action.ANSWER,
                        turns=[{"role": "assistant", "content": swapped}], actions=[Action.ANSWER], outcome=swapped,
                        n_clarifications=0, hit_turn_limit=False)]
    paths = {"data_dir": str(tmp_path / "data")}
    node = {"name": "ambigsql", "ignore_column_order": False}          # conf/dataset/ambigsql.yaml's default
    assert trajectory_scorer(paths, node)(batch) == [0.0]                 # ACT (methods/act/recipe.py)
    assert trajectory_scorer(paths, {**node, "ignore_column_order": True})(batch) == [1.0]
    irpo_h = heuristic_from_config("ambigsql", paths, {**node, "ignore_column_order": True})   # IRPO's H
    assert irpo_h.ignore_column_order is True and irpo_h.score([swapped], [[gold]], [example]) == [1.0]
