"""Classifier agreement with gold actions: hand-computed metrics on a scripted classifier, sampling, the
demonstration-leak guard, and experiments/classifier_agreement.py end to end (subprocess and compose)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.llm_action_classifier import Demonstration
from clarifylab.errors import ConfigError
from clarifylab.evaluation.classifier_agreement import (
    check_no_leak,
    classifier_agreement,
    confusion_counts,
    run_classifier_agreement,
    split_names,
)
from clarifylab.evaluation.eval_sample import sample_eval_examples

register_resolvers()
C, A = Action.CLARIFY, Action.ANSWER


def make_examples(actions: list[Action]) -> list[Example]:
    return [Example(id=f"e{i}", task="toy", context=f"table {i}", history=[Turn("user", f"question {i}")],
                    response=f"response {i}", action=a, goal=["x"],
                    clarifications=[Clarification("reply", "x")] if a is C else [])
            for i, a in enumerate(actions)]


class ScriptedClassifier:
    """Labels ``response <i>`` with ``labels[i]``; records the batch sizes it was called with."""

    def __init__(self, labels: list[Action]) -> None:
        self.labels = labels
        self.batches: list[int] = []

    def classify(self, responses, examples=None):
        self.batches.append(len(responses))
        assert examples is not None and [e.response for e in examples] == list(responses)
        return [self.labels[int(r.split()[1])] for r in responses]


def test_agreement_metrics_and_confusion_on_a_scripted_classifier():
    # gold C C C A A A A A vs predicted C C A C A A A A: TP 2, FN 1, FP 1, TN 4.
    gold = [C, C, C, A, A, A, A, A]
    classifier = ScriptedClassifier([C, C, A, C, A, A, A, A])
    result = classifier_agreement(classifier, make_examples(gold), max_disagreements=1, batch_size=3)
    assert classifier.batches == [3, 3, 2]
    assert result["n"] == 8 and result["n_gold_clarify"] == 3 and result["n_predicted_clarify"] == 3
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["clarify_precision"] == pytest.approx(2 / 3)
    assert result["clarify_recall"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)  # answer class: P = R = 4/5
    assert result["confusion"] == {"clarify": {"clarify": 2, "answer": 1}, "answer": {"clarify": 1, "answer": 4}}
    assert result["n_disagreements"] == 2
    assert result["disagreements"] == [{"id": "e2", "question": "question 2", "response": "response 2",
                                        "gold": "clarify", "predicted": "answer"}]
    assert result["seconds"] >= 0


def test_confusion_counts_keeps_absent_labels_and_checks_lengths():
    assert confusion_counts([A, A], [A, A]) == {"clarify": {"clarify": 0, "answer": 0},
                                                "answer": {"clarify": 0, "answer": 2}}
    with pytest.raises(ValueError, match="2 gold actions but 1 predictions"):
        confusion_counts([A, A], [A])


def test_the_agreement_sample_is_the_evaluations_sampler_seeded_ordered_and_balanced():
    # One sampler (evaluation/eval_sample.py) for evaluate.py and the agreement. Without `balanced` the agreement
    # used to draw uniformly; it now draws stratified by gold action like evaluate.py: 3 clarify / 7 answer with
    # N = 4 -> quotas 1.2 / 2.8 -> 1 clarify + 3 answer, for every seed (a uniform draw could take 0 clarify).
    examples = make_examples([C, C, C] + [A] * 7)
    assert sample_eval_examples(examples, None, seed=0) == examples
    for seed in range(5):
        stratified = sample_eval_examples(examples, 4, seed=seed)
        assert [e.action for e in stratified].count(C) == 1 and len(stratified) == 4
    stratified = sample_eval_examples(examples, 4, seed=1)
    assert stratified == sample_eval_examples(examples, 4, seed=1)
    assert [e.id for e in stratified] == sorted((e.id for e in stratified), key=lambda i: int(i[1:]))  # input order
    balanced = sample_eval_examples(examples, 4, seed=1, balanced=True)
    assert [e.action for e in balanced].count(C) == 2 and [e.action for e in balanced].count(A) == 2
    topped_up = sample_eval_examples(examples, 8, seed=0, balanced=True)  # 4 clarify wanted, only 3 exist
    assert [e.action for e in topped_up].count(C) == 3 and len(topped_up) == 8
    with pytest.raises(ConfigError, match="max_examples"):
        sample_eval_examples(examples, 0, seed=0, balanced=True)


def test_leak_guard_and_split_names():
    examples = make_examples([C, A])
    demo = Demonstration(context="table 1", history=(("user", "question 1"),), response="response 1", action=A)

    class WithDemos:
        demonstrations = [demo]

    with pytest.raises(ConfigError, match="'e1'.*demonstration_split"):
        check_no_leak(WithDemos(), examples)
    check_no_leak(WithDemos(), examples[:1])  # no overlap: no error
    assert split_names("test") == ["test"] and split_names(["train", "test"]) == ["train", "test"]
    with pytest.raises(ConfigError, match="split must be"):
        split_names([])


def test_app_runs_heuristic_on_synthetic_tables(tmp_path):
    env = {**os.environ, "CLARIFYLAB_GENERATED_DIR": str(tmp_path / "generated"),
           "CLARIFYLAB_CACHE_DIR": str(tmp_path / "cache")}
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "experiments" / "classifier_agreement.py"), "dataset=synthetic_tables",
         "split=[validation,test]", "max_examples=10", "balanced=true", "progress=false", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    record = json.loads((run_dir / "agreement.json").read_text())
    assert (record["dataset"], record["split"], record["classifier"]) == (
        "synthetic_tables", "validation+test", "HeuristicActionClassifier")
    assert record["n"] == 10 and record["n_gold_clarify"] == 5 and record["demonstration_split"] is None
    assert record["accuracy"] == 1.0 and record["confusion"]["clarify"]["clarify"] == 5
    assert "| synthetic_tables | validation+test |" in (run_dir / "agreement.md").read_text()


def compose_agreement(tmp_path, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="agreement", return_hydra_config=True, overrides=[
            "progress=false", f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.generated_dir={tmp_path / 'generated'}", *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "run")  # normally the Hydra run directory
    return cfg


FEW_SHOT_TINY = ["classifier=llm_fewshot", "classifier.backend.model.source=tiny", "classifier.k=2",
                 "classifier.backend.cache=false"]


def test_few_shot_classifier_draws_demonstrations_from_another_split(tmp_path):
    cfg = compose_agreement(tmp_path, [*FEW_SHOT_TINY, "max_examples=4", "balanced=true"])
    record = run_classifier_agreement(cfg)
    assert record["classifier"] == "FewShotLLMActionClassifier"
    assert (record["split"], record["demonstration_split"]) == ("test", "train")
    assert record["classifier_config"]["pool_split"] == "train"
    assert record["n"] == 4 and record["n_gold_clarify"] == 2
    assert record["usage"]["classifier"]["conversations"] == 4
    assert json.loads((tmp_path / "run" / "agreement.json").read_text())["n"] == 4


@pytest.mark.parametrize("overrides", [["demonstration_split=test"], ["split=[train,test]"]])
def test_few_shot_demonstrations_from_the_evaluated_split_are_refused(tmp_path, overrides):
    cfg = compose_agreement(tmp_path, [*FEW_SHOT_TINY, *overrides])
    with pytest.raises(ConfigError, match="demonstration_split='(test|train)' overlaps"):
        run_classifier_agreement(cfg)
