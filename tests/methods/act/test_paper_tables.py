"""ACT Tables 1-3 layout: per-dataset tables, the paper's column names and row order, through report.py."""

from __future__ import annotations

import importlib.util
import json

from rich.console import Console

from clarifylab.config import PROJECT_ROOT
from clarifylab.methods.act.paper_tables import act_paper_tables, render_act_tables


def rows():
    def row(dataset, approach, n, **metrics):
        return {"dataset": dataset, "model": "zephyr", "approach": approach, "conversations": n, **metrics}
    return [row("pacific", "act", 50, macro_f1=0.822, turn_h=0.628, trajectory_h=0.619, post_clarify_h=0.572),
            row("pacific", "sft", 100, macro_f1=0.823, turn_h=0.586, trajectory_h=0.603, post_clarify_h=0.499),
            row("pacific", "irpo", 50, macro_f1=0.677, turn_h=0.591, trajectory_h=0.567, post_clarify_h=0.344),
            row("pacific", "sft", 50, macro_f1=0.690, turn_h=0.578, trajectory_h=0.613, post_clarify_h=0.435),
            row("pacific", "standard", 10, macro_f1=0.814),
            row("ambigsql", "act", 50, accuracy=0.808, macro_f1=0.807, trajectory_h=0.436, post_clarify_h=0.381)]


def test_tables_follow_the_paper_order_and_skip_absent_datasets():
    tables = act_paper_tables(rows())
    assert [t.number for t, _ in tables] == [1, 3]  # no Abg-CoQA rows: no Table 2
    pacific = tables[0][1]
    assert [(r["approach"], r["conversations"]) for r in pacific] == [
        ("standard", 10), ("sft", 50), ("irpo", 50), ("act", 50), ("sft", 100)]


def test_markdown_uses_the_papers_column_names():
    markdown = render_act_tables(rows(), console=Console(file=open("/dev/null", "w")))
    table1, table3 = markdown.split("## Table 3")
    assert table1.startswith("## Table 1: PACIFIC\n\n| Base Model | Approach | Conversations | Macro F1 | Turn F1 | "
                             "Traj. F1 | Post-Clarify F1 |")
    assert "| zephyr | act | 50 | 82.2 | 62.8 | 61.9 | 57.2 |" in table1
    assert "| Accuracy | Macro F1 | Execution Match | PC Execution Match |" in table3
    assert "| zephyr | act | 50 | 80.8 | 80.7 | 43.6 | 38.1 |" in table3


def test_report_script_layout_act(tmp_path, capsys):
    for i, row in enumerate(rows()):
        run = tmp_path / "mr" / str(i)
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({**row, "label": row["approach"]}))
    spec = importlib.util.spec_from_file_location("report_script", PROJECT_ROOT / "experiments" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    out = tmp_path / "tables.md"
    assert report.main([str(tmp_path / "mr"), "--layout", "act", "--out", str(out), "--title", "ACT"]) == 0
    text = out.read_text()
    assert text.startswith("# ACT\n\n## Table 1: PACIFIC") and "## Table 3: AmbigSQL" in text
    assert "Table 1: PACIFIC" in capsys.readouterr().out


def test_ablation_pseudo_label_and_split_runs_are_rows_of_their_own():
    base = {"dataset": "pacific", "model": "zephyr", "approach": "act", "conversations": 50, "split": "test",
            "data": "validation.json@aaaaaaaaaaaa", "macro_f1": 0.8}
    variants = [base, {**base, "act_ablation": "none"}, {**base, "act_ablation": "no_simulation", "macro_f1": 0.7},
                {**base, "pseudo_labels": True, "macro_f1": 0.75}, {**base, "split": "validation", "macro_f1": 0.9}]
    (table, selected), = act_paper_tables(variants)
    assert [(r["approach_name"], r["split"]) for r in selected] == [
        ("act", "test"), ("act", "test"), ("act", "validation"), ("act (no_simulation)", "test"),
        ("act (pseudo-labels)", "test")]
    markdown = render_act_tables(variants, console=Console(file=open("/dev/null", "w")))
    assert "| Base Model | Approach | Conversations | Split | Macro F1 |" in markdown  # the splits differ
    assert "| zephyr | act (no_simulation) | 50 | test | 70.0 |" in markdown
    assert "| zephyr | act | 50 | validation | 90.0 |" in markdown
