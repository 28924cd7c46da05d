"""Teacher-student benchmark runs in experiments/report.py: one row per configuration and strategy, replicates
(seeds) averaged only when everything else matches; hand-made metrics.json files."""

from __future__ import annotations

import csv
import importlib.util
import io
import json

import pytest

from clarifylab.config import PROJECT_ROOT
from clarifylab.methods.ts.report_table import aggregate_benchmark, strategy_rows


def load_report_script():
    spec = importlib.util.spec_from_file_location("report_script_ts", PROJECT_ROOT / "experiments" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics(acc_or, acc_cl, acc_co, precision, recall, n_pairs=4):
    return {"n_pairs": n_pairs, "acc_or": acc_or, "acc_cl": acc_cl, "acc_co": acc_co, "clarify_precision": precision,
            "clarify_recall": recall, "targeted_rate": 0.5}


def benchmark_run(directory, seed, model="smollm2", judge="rule", column=(0.5, 0.25, 0.5, 0.5, 1.0),
                  question=(0.75, 0.5, 0.75, 0.4, 0.5), **identity):
    """A metrics.json as protocol=ts_benchmark writes it (identity, overall = ``all``, by_strategy)."""
    by_strategy = {"column": metrics(*column), "question": metrics(*question),
                   "all": metrics(*[(a + b) / 2 for a, b in zip(column, question)], n_pairs=8)}
    summary = {"label": "ts", "dataset": "ts_curriculum", "split": "test", "model": model, "approach": "base",
               "conversations": None, "seed": seed, "data_file": "/x/test.jsonl", "data_sha256": "ab" * 32,
               "max_examples": None, **by_strategy["all"], "heuristic": "tatqa", "judge": judge, "judge_model": None,
               "by_strategy": by_strategy, "usage": {"policy": {"calls": 3}}, **identity}
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(summary))


def test_strategy_rows_one_per_strategy_with_its_metrics(tmp_path):
    benchmark_run(tmp_path / "a", seed=0)
    summary = json.loads((tmp_path / "a" / "metrics.json").read_text())
    rows = strategy_rows([summary, {"label": "act run", "accuracy": 0.5}])  # a non-benchmark run is skipped
    assert [r["strategy"] for r in rows] == ["column", "question", "all"]
    assert (rows[0]["acc_or"], rows[0]["acc_cl"], rows[0]["clarify_recall"], rows[0]["n_pairs"]) == (0.5, 0.25, 1.0, 4)
    assert rows[2]["acc_co"] == pytest.approx(0.625) and rows[2]["n_pairs"] == 8
    assert all("by_strategy" not in r and "usage" not in r and r["model"] == "smollm2" for r in rows)


def test_replicates_average_only_when_configs_match(tmp_path):
    benchmark_run(tmp_path / "s0", seed=0, column=(0.5, 0.25, 0.5, 0.5, 1.0))
    benchmark_run(tmp_path / "s1", seed=1, column=(0.25, 0.75, 0.5, 0.5, 0.0))
    benchmark_run(tmp_path / "teacher_judge", seed=0, judge="teacher", judge_model="smollm2-teacher")
    benchmark_run(tmp_path / "other_model", seed=0, model="qwen")
    summaries = [json.loads((tmp_path / d / "metrics.json").read_text())
                 for d in ("s0", "s1", "teacher_judge", "other_model")]
    rows = aggregate_benchmark(summaries)
    assert len(rows) == 9  # (two seeds of one config) + teacher judge + other model, 3 strategies each
    column = rows[0]
    assert (column["strategy"], column["runs"], column["seed"]) == ("column", 2, "0,1")
    assert column["acc_or"] == pytest.approx(0.375) and column["acc_or_std"] == pytest.approx(0.1767767, rel=1e-6)
    assert column["acc_cl"] == pytest.approx(0.5) and column["clarify_recall"] == pytest.approx(0.5)
    assert column["acc_co"] == 0.5 and column["n_pairs"] == 4
    assert [(r["strategy"], r["runs"], r["judge"], r["model"]) for r in rows[3:]] == [
        ("column", 1, "teacher", "smollm2"), ("question", 1, "teacher", "smollm2"), ("all", 1, "teacher", "smollm2"),
        ("column", 1, "rule", "qwen"), ("question", 1, "rule", "qwen"), ("all", 1, "rule", "qwen")]


def test_report_script_adds_the_benchmark_table_beside_the_flat_one(tmp_path, capsys):
    benchmark_run(tmp_path / "runs" / "ts0", seed=0)
    benchmark_run(tmp_path / "runs" / "ts1", seed=1, column=(0.25, 0.75, 0.5, 0.5, 0.0))
    flat = tmp_path / "runs" / "act_eval"
    flat.mkdir(parents=True)
    (flat / "metrics.json").write_text(json.dumps({"label": "act", "dataset": "pacific", "model": "smollm2",
                                                   "approach": "act", "accuracy": 0.5, "seed": 0}))
    out = tmp_path / "report.md"
    assert load_report_script().main([str(tmp_path / "runs"), "--out", str(out), "--title", "T"]) == 0
    assert "report: 4 rows" in capsys.readouterr().out  # 1 flat row + 3 strategy rows (two seeds averaged)
    text = out.read_text()
    flat_part, bench_part = text.split("## Teacher-student benchmark")
    assert "| act |" in flat_part and "| ts |" not in flat_part
    lines = [line for line in bench_part.splitlines() if line.startswith("| ts |")]
    assert len(lines) == 3
    header = [c.strip() for c in bench_part.splitlines()[2].strip("|").split("|")]
    assert header[header.index("Strategy"):] == ["Strategy", "Runs", "Pairs", "AccOr", "AccCl", "AccCo", "Clar. P",
                                                 "Clar. R", "Targeted"]
    column = [c.strip() for c in lines[0].strip("|").split("|")]
    assert column[header.index("Strategy"):] == ["column", "2", "4", "37.5 ± 17.7", "50.0 ± 35.4", "50.0 ± 0.0",
                                                 "50.0 ± 0.0", "50.0 ± 70.7", "50.0 ± 0.0"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [r.get("strategy") or "" for r in rows] == ["", "column", "question", "all"]


def test_report_script_with_benchmark_runs_only(tmp_path):
    benchmark_run(tmp_path / "ts0", seed=0)
    out = tmp_path / "r.md"
    assert load_report_script().main([str(tmp_path / "ts0"), "--out", str(out), "--title", "Only TS"]) == 0
    text = out.read_text()
    assert text.startswith("# Only TS\n") and text.count("| ts |") == 3 and "Accuracy" not in text


def test_yield_table_shows_every_stage_and_the_drops_of_a_build(tmp_path, tatqa_file):
    from ts_scripted import build

    from clarifylab.methods.ts.report_table import yield_table

    build(tmp_path / "b", tatqa_file, strategies=["column"])
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    lines = yield_table(manifest).splitlines()
    assert lines[0] == ("| source | strategy | sources | identified | ablated | student_fails | clarification_asked | "
                        "clarification_guided | clarification_targeted | clarification_recovered | "
                        "correction_recovered | dropped |")
    assert len(lines) == 3
    assert lines[2] == ("| tatqa | column | 4 | 4 | 4 | 3 | 3 | 0 | 3 | 2 | 2 | student_did_not_recover 1, "
                        "student_still_correct 1 |")
