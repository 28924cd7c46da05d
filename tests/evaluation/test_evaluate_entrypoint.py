"""evaluate.py end to end through Hydra compose on the tiny model: files, identity, W&B, cache, baselines."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.evaluation.policy_eval import run_policy_evaluation

register_resolvers()
FILES = ("metrics.json", "metrics.csv", "results.md", "trajectories.jsonl")


def compose_evaluate(tmp_path, out: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="evaluate", return_hydra_config=True, overrides=[
            "student=tiny", "max_examples=4", "generation.max_new_tokens=6", "progress=false",
            f"paths.cache_dir={tmp_path / 'cache'}", f"paths.generated_dir={tmp_path / 'generated'}", *overrides])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / out)  # normally the Hydra run directory
    return cfg


def test_evaluate_writes_every_file_and_an_offline_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_evaluate(tmp_path, "run", ["logger=wandb", "simulator=llm", "classifier=llm_fewshot",
                                             "simulator.backend.model.source=tiny",
                                             "classifier.backend.model.source=tiny", "classifier.k=2"])
    metrics = run_policy_evaluation(cfg)
    out = tmp_path / "run"
    assert all((out / name).is_file() for name in FILES)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert (saved["label"], saved["model"], saved["approach"], saved["conversations"]) == ("tiny", "tiny", "base", None)
    assert (saved["dataset"], saved["split"], saved["n_examples"]) == ("synthetic_tables", "test", 4)
    assert saved["simulator"] == "llm" and saved["classifier"] == "FewShotLLMActionClassifier"
    assert saved["simulator_model"] == saved["classifier_model"] == "tiny:seed=0"  # the LLM behind each role
    # The classifier labels every first response in one call: 4 conversations, tokens counted.
    assert saved["usage"]["classifier"]["conversations"] >= 4 and saved["usage"]["policy"]["prompt_tokens"] > 0
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 4
    assert (out / "metrics.csv").read_text().count("\n") == 2
    assert "| Label | Dataset | Model |" in (out / "results.md").read_text()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    tables = list(runs[0].rglob("*.table.json"))
    assert len(tables) == 1 and len(json.loads(tables[0].read_text())["data"]) == 4
    assert (out / "csv" / "metrics.csv").is_file()  # the CSV logger of logger=wandb


def test_cot_baseline_identity_and_a_free_cached_rerun(tmp_path):
    first = run_policy_evaluation(compose_evaluate(tmp_path, "cot1", ["baseline=cot", "baseline.conversations=2"]))
    assert (first["approach"], first["conversations"], first["model"]) == ("cot", 2, "tiny")
    raw = json.loads((tmp_path / "cot1" / "baseline_raw_outputs.json").read_text())
    assert len(raw) == first["usage"]["policy"]["conversations"]
    assert first["usage"]["policy"]["backend_calls"] >= 1 and first["usage"]["policy"]["cache_hits"] == 0
    second = run_policy_evaluation(compose_evaluate(tmp_path, "cot2", ["baseline=cot", "baseline.conversations=2"]))
    assert second["usage"]["policy"]["backend_calls"] == 0
    assert second["usage"]["policy"]["cache_hits"] == first["usage"]["policy"]["conversations"]
    keep = ("macro_f1", "turn_h", "trajectory_h", "post_clarify_h", "n_trajectories")
    assert {k: second[k] for k in keep} == {k: first[k] for k in keep}


def test_openai_policy_builds_from_config(tmp_path):
    from clarifylab.backends.cache import CachedBackend
    from clarifylab.evaluation.components import build_policy_backend

    cfg = compose_evaluate(tmp_path, "x", ["policy=openai", "policy.model=served-model",
                                           "policy.base_url=http://127.0.0.1:9/v1"])
    backend, described = build_policy_backend(cfg)
    assert isinstance(backend, CachedBackend) and backend.inner.name == "openai"
    assert described["model"] == "served-model" and backend.model_id == "served-model"


def test_missing_policy_dir_fails_loudly(tmp_path):
    from clarifylab.errors import DataNotFoundError

    cfg = compose_evaluate(tmp_path, "x", [f"policy_dir={tmp_path / 'nope'}"])
    with pytest.raises(DataNotFoundError, match="policy_dir=.*does not exist"):
        run_policy_evaluation(cfg)


def test_metrics_record_provenance_and_report_keeps_non_replicates_apart(tmp_path):
    from rich.console import Console

    from clarifylab.evaluation.run_provenance import file_sha256
    from clarifylab.evaluation.tables import build_report

    runs = {"s0": ["seed=0"], "s1": ["seed=1"], "dev": ["seed=0", "split=validation"]}
    saved = {name: run_policy_evaluation(compose_evaluate(tmp_path, f"runs/{name}", overrides))
             for name, overrides in runs.items()}
    first = saved["s0"]
    test_file = tmp_path / "generated" / "synthetic_tables" / "test.jsonl"
    assert (first["split"], first["data_file"], first["data_sha256"]) == ("test", str(test_file),
                                                                          file_sha256(test_file))
    assert saved["dev"]["data_file"] == str(test_file.with_name("validation.jsonl"))
    assert first["overrides"][:2] == ["student=tiny", "max_examples=4"] and first["choices"]["student"] == "tiny"
    assert (first["max_examples"], first["sampling"], first["n_examples_in_split"]) == (
        4, "stratified_by_gold_action", 60)
    assert first["code_version"] is None or len(first["code_version"].removesuffix("+dirty")) == 40
    assert (first["trainer"], first["act_ablation"], first["pairs"]) == (None, None, None)  # not a trained policy
    assert (first["simulator_model"], first["classifier_model"]) == (None, None)  # oracle, heuristic: no LLM
    records = {name: [json.loads(line) for line in (tmp_path / "runs" / name / "trajectories.jsonl").open()]
               for name in ("s0", "s1")}
    assert [r["id"] for r in records["s0"]] != [r["id"] for r in records["s1"]]  # each seed draws its own sample
    assert all(sorted(r["gold_action"] for r in rs) == ["answer", "answer", "clarify", "clarify"]  # 30/60 clarify
               for rs in records.values())
    _, _, rows = build_report([tmp_path / "runs"], console=Console(record=True, width=300))
    assert sorted((r["split"], r["runs"], r["seed"]) for r in rows) == [("test", 2, "0,1"), ("validation", 1, 0)]
