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
