"""Result tables and the multirun report: formatting, recursive discovery, aggregation, report.py."""

from __future__ import annotations

import csv
import importlib.util
import io
import json

import pytest
from rich.console import Console

from clarifylab.config import PROJECT_ROOT
from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.evaluation.tables import aggregate_runs, build_report, find_eval_dirs, format_value, markdown_table


def load_report_script():
    spec = importlib.util.spec_from_file_location("report_script", PROJECT_ROOT / "experiments" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(directory, **metrics):
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / ".hydra").mkdir()  # multirun job folders hold other things too


def fake_multirun(root):
    """A Hydra multirun tree: 3 seeds of the cot baseline, 1 of standard, 1 SFT policy; plus noise."""
    base = dict(dataset="pacific", model="gemini", conversations=10, heuristic="drop_f1", n_trajectories=40)
    for job, (seed, f1, traj) in enumerate([(0, 0.80, 0.50), (1, 0.90, 0.60), (2, 0.70, 0.40)]):
        write_run(root / f"{job}_baseline=cot,seed={seed}", label="gemini", approach="cot", seed=seed,
                  macro_f1=f1, trajectory_h=traj, post_clarify_h=None if seed == 0 else 0.5, **base)
    write_run(root / "3_baseline=standard,seed=0", label="gemini", approach="standard", seed=0, macro_f1=0.6,
              trajectory_h=0.45, post_clarify_h=0.25, **base)
    write_run(root / "nested" / "sft50", label="sft", dataset="pacific", model="zephyr", approach="sft",
              conversations=50, heuristic="drop_f1", n_trajectories=40, macro_f1=0.69, trajectory_h=0.613,
              post_clarify_h=0.435)
    (root / "multirun.yaml").write_text("not a run")


def test_format_value_shows_rates_as_percentages():
    assert format_value(0.8125, "macro_f1") == "81.2" and format_value(None, "macro_f1") == "–"
    assert format_value(0.8125, "seconds") == "0.812" and format_value(12, "n") == "12"
    assert format_value(float("nan"), "turn_h") == "–" and format_value(True, "x") == "True"


def test_markdown_table_with_std():
    rows = [{"label": "a", "macro_f1": 0.8, "macro_f1_std": 0.1}, {"label": "b"}]
    assert markdown_table(rows, ["label", "macro_f1"]) == (
        "| Label | Macro F1 |\n|---|---|\n| a | 80.0 ± 10.0 |\n| b | – |\n")


def test_find_eval_dirs_recurses_and_fails_on_empty(tmp_path):
    fake_multirun(tmp_path / "mr")
    found = find_eval_dirs([tmp_path / "mr", tmp_path / "mr" / "nested" / "sft50"])
    assert [d.name for d in found] == ["0_baseline=cot,seed=0", "1_baseline=cot,seed=1", "2_baseline=cot,seed=2",
                                       "3_baseline=standard,seed=0", "sft50"]  # no duplicate of sft50
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no metrics.json at or below"):
        find_eval_dirs([tmp_path / "empty"])
    with pytest.raises(DataNotFoundError, match="does not exist"):
        find_eval_dirs([tmp_path / "missing"])


def test_aggregate_runs_one_row_per_model_approach_conversations(tmp_path):
    fake_multirun(tmp_path)
    markdown, csv_text, rows = build_report([tmp_path], console=Console(record=True, width=200))
    assert [(r["model"], r["approach"], r["conversations"], r["runs"]) for r in rows] == [
        ("gemini", "cot", 10, 3), ("gemini", "standard", 10, 1), ("zephyr", "sft", 50, 1)]
    cot = rows[0]
    assert cot["macro_f1"] == pytest.approx(0.8) and cot["macro_f1_std"] == pytest.approx(0.1)
    assert cot["trajectory_h"] == pytest.approx(0.5) and cot["post_clarify_h"] == 0.5  # None skipped
    assert cot["post_clarify_h_std"] == 0.0 and cot["n_trajectories"] == 40 and cot["seed"] == "0,1,2"
    assert "macro_f1_std" not in rows[1]
    assert "| gemini | pacific | gemini | cot | 10 | 3 | drop_f1 | 40 | – | 80.0 ± 10.0 |" in markdown
    sft_row = "| sft | pacific | zephyr | sft | 50 | 1 | drop_f1 | 40 | – | 69.0 | – | – | – | 61.3 | 43.5 |"
    assert sft_row in markdown
    parsed = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(parsed) == 3 and float(parsed[0]["macro_f1"]) == pytest.approx(0.8) and parsed[0]["runs"] == "3"


def test_aggregate_joins_disagreeing_text_fields():
    rows = aggregate_runs([{"model": "m", "label": "x", "f": 1}, {"model": "m", "label": "y", "f": 3}], ["model"])
    assert rows[0]["label"] == "x,y" and rows[0]["f"] == 2.0 and rows[0]["runs"] == 2


def test_report_script_writes_markdown_and_csv(tmp_path, capsys):
    fake_multirun(tmp_path / "mr")
    report = load_report_script()
    out = tmp_path / "table.md"
    assert report.main([str(tmp_path / "mr"), "--out", str(out), "--title", "PACIFIC"]) == 0
    assert out.read_text().startswith("# PACIFIC\n\n| Label | Dataset |")
    assert len((tmp_path / "table.csv").read_text().splitlines()) == 4
    printed = capsys.readouterr().out
    assert "report: 3 rows" in printed and "Post-Clarify H" in printed
    assert report.main([str(tmp_path / "nowhere")]) == 2


def test_malformed_metrics_file_names_the_path(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{")
    with pytest.raises(DataFormatError, match="run/metrics.json: not valid JSON"):
        build_report([tmp_path], console=Console(record=True))


def act_run(**changes):
    """metrics.json of an evaluated ACT policy, with every identity key evaluate.py writes."""
    return {"label": "act", "dataset": "pacific", "split": "test", "data_file": "/data/pacific/validation.json",
            "data_sha256": "a" * 64, "model": "smollm2_gguf", "approach": "act", "trainer": "act", "act_ablation": "none",
            "train_dataset": "pacific", "pairs": "/gen/act_pairs/pacific/train.jsonl", "pseudo_labels": False,
            "conversations": 50, "simulator": "oracle", "classifier": "HeuristicActionClassifier", "max_turns": 3,
            "interpretations": "first", "max_examples": None, "seed": 0, "train_seed": 0, "macro_f1": 0.5,
            "overrides": ["seed=0"], **changes}


VARIANTS = {  # run folder -> what differs from seed 0 of the full ACT run
    "act_s0": {}, "act_s1": {"seed": 1, "train_seed": 1, "macro_f1": 0.7, "overrides": ["seed=1"]},
    "no_sim": {"act_ablation": "no_simulation"},
    "pseudo": {"pairs": "/gen/act_pairs/pacific-c50-pseudo/train.jsonl", "pseudo_labels": True},
    "dev_split": {"split": "validation"},
    "heldout_file": {"split": "all", "data_file": "/data/pacific/test.json", "data_sha256": "b" * 64},
    "edited_file": {"data_sha256": "c" * 64},  # same path, other content
    "llm_user": {"simulator": "llm", "simulator_model": "smollm2_gguf:SmolLM2-135M-Instruct"},
}


def test_runs_differing_in_ablation_pairs_split_or_data_are_separate_rows_seeds_merge(tmp_path, capsys):
    for name, changes in VARIANTS.items():
        write_run(tmp_path / "runs" / name, **act_run(**changes))
    markdown, _, rows = build_report([tmp_path / "runs"], console=Console(record=True, width=300))
    by_key = {(r["act_ablation"], r["pseudo_labels"], r["split"], r["data"], r["simulator"]): r for r in rows}
    assert len(rows) == 7 and len(by_key) == 7
    full = by_key[("none", False, "test", "validation.json@aaaaaaaaaaaa", "oracle")]
    assert full["runs"] == 2 and full["seed"] == "0,1" and full["train_seed"] == "0,1"
    assert full["macro_f1"] == pytest.approx(0.6) and full["macro_f1_std"] == pytest.approx(0.1414, abs=1e-4)
    assert [r["runs"] for r in rows if r is not full] == [1] * 6
    assert by_key[("none", False, "all", "test.json@bbbbbbbbbbbb", "oracle")]["runs"] == 1
    assert by_key[("none", False, "test", "validation.json@cccccccccccc", "oracle")]["runs"] == 1
    # The table names what differs: split, data (file@hash), ablation and the pairs' folder.
    assert "| Split | Data | Model | Approach | ACT ablation | Pairs |" in markdown
    assert "| act | pacific | test | validation.json@aaaaaaaaaaaa | smollm2_gguf | act | none | pacific/train.jsonl " \
           "| 50 | 2 |" in markdown
    assert "| no_simulation | pacific/train.jsonl |" in markdown
    assert "| none | pacific-c50-pseudo/train.jsonl |" in markdown
    report = load_report_script()
    assert report.main([str(tmp_path / "runs")]) == 0 and "report: 7 rows" in capsys.readouterr().out


def test_old_metrics_without_the_new_keys_still_group():
    rows = aggregate_runs([{"dataset": "d", "model": "m", "approach": "a", "x": 1.0},
                           {"dataset": "d", "model": "m", "approach": "a", "x": 3.0}])
    assert len(rows) == 1 and rows[0]["runs"] == 2 and rows[0]["x"] == 2.0
