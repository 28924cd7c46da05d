"""The demo's read-outs: accuracy on fully specified questions (scripted backend), ACT branch counts, the PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clarifylab.data.synthetic_tables import build_synthetic_corpus, fully_specified
from clarifylab.evaluation.fully_specified import fully_specified_accuracy
from clarifylab.evaluation.plots import mean_sd, plot_demo, read_curve
from clarifylab.metrics.task_heuristics import heuristic_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
from demo_pipeline import branch_counts  # noqa: E402


class Scripted:
    """Replies with ``replies[i]`` to the i-th conversation; records the last user turns it saw."""

    def __init__(self, replies):
        self.replies, self.seen = replies, []

    def complete(self, batch, params):
        self.seen = [messages[-1]["content"] for messages in batch]
        return self.replies[:len(batch)]


def test_fully_specified_accuracy_scores_the_full_questions():
    corpus = build_synthetic_corpus(tables_per_split={"train": 0, "validation": 0, "test": 1}, kinds=["lookup"],
                                    layout="sentences", entities_per_table=2, metrics_per_table=2, whole_numbers=True)
    examples = [fully_specified(e) for e in corpus["test"]]
    golds = [e.goal[0] for e in examples]
    backend = Scripted([f"It was {golds[0]} million.", "In 2019 it was 0.", f"{golds[2]}", "I do not know."])
    heuristic = heuristic_for("synthetic_tables")
    summary, rows = fully_specified_accuracy(
        backend, examples, params=None,
        score=lambda responses, batch: heuristic.score(responses, [list(e.goal) for e in batch], batch))
    assert summary == {"accuracy": 0.5, "n": 4, "correct": 2, "by_kind": {"lookup": 0.5}}
    assert [row["score"] for row in rows] == [1.0, 0.0, 1.0, 0.0]
    assert backend.seen == [e.history[-1].content for e in examples]
    assert all(e.meta["removed_slot"] is None for e in examples)


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def make_run(run: Path, scale: float) -> None:
    write_csv(run / "sft" / "csv" / "metrics.csv", "epoch,step,train/loss,val/loss",
              ["0,0,2.5,", "0,1,1.5,", "0,1,,1.7", "0,2,1.0,"])
    write_csv(run / "act" / "csv" / "metrics.csv", "epoch,step,train/loss,train/reward_margin",
              ["0,0,0.69,0.0", "0,1,0.6,0.2"])
    for label, h in (("base", 0.1), ("sft", 0.4), ("act", 0.5)):
        (run / f"eval_{label}").mkdir(parents=True)
        (run / f"eval_{label}" / "metrics.json").write_text(json.dumps({"accuracy": 0.5 * scale, "trajectory_h": h * scale,
                                                                       "post_clarify_h": None}))
    samples = run / "act" / "act_samples"
    samples.mkdir(parents=True)
    lines = [{"branch": "good_trajectory", "sample_action": "clarify"}, {"branch": "good_trajectory",
             "sample_action": "answer"}, {"branch": "wrong_action", "sample_action": "answer"},
             {"branch": "bad_trajectory", "sample_action": "clarify"}]
    (samples / "rank0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_read_curve_skips_rows_without_the_column(tmp_path):
    make_run(tmp_path, 1.0)
    assert read_curve(tmp_path / "sft" / "csv" / "metrics.csv", "train/loss") == ([0.0, 1.0, 2.0], [2.5, 1.5, 1.0])
    assert read_curve(tmp_path / "sft" / "csv" / "metrics.csv", "val/loss") == ([1.0], [1.7])
    assert read_curve(tmp_path / "missing.csv", "train/loss") == ([], [])


def test_mean_sd():
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert mean_sd([4.0]) == (4.0, 0.0)


def test_plot_demo_writes_a_png(tmp_path):
    runs = {"seed 0": tmp_path / "s0", "seed 1": tmp_path / "s1"}
    make_run(runs["seed 0"], 1.0)
    make_run(runs["seed 1"], 0.5)
    out = plot_demo(runs, None, tmp_path / "out" / "curves.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000


def test_branch_counts(tmp_path):
    make_run(tmp_path, 1.0)
    assert branch_counts(tmp_path) == {"good_trajectory": 2, "wrong_action": 1, "bad_trajectory": 1, "samples": 4,
                                       "winner_replaced_from_clarify": 1}


def test_a_rerun_of_a_finished_one_seed_demo_skips_every_stage_and_keeps_its_stage_times(tmp_path, monkeypatch, capsys):
    """With one seed the run folder is --out itself: the per-seed summary must not overwrite the run's own
    stage_times.json (it did once, and the next run crashed reading it back)."""
    import demo_pipeline

    out = tmp_path / "demo"
    for name, done, _ in demo_pipeline.stages(out, 0):
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps({"accuracy": 0.425, "correct": 17, "n": 40}) if done.suffix == ".json" else "")
    (out / "stage_times.json").write_text(json.dumps({"SFT": 198.0}))

    def fake_run(command, cwd, check):  # only report.py runs: every stage is done
        assert command[1] == "experiments/report.py"
        (out / "results.md").write_text("# table\n")

    monkeypatch.setattr(demo_pipeline.subprocess, "run", fake_run)
    monkeypatch.setattr("clarifylab.evaluation.plots.plot_demo", lambda runs, csv, png: None)
    for _ in range(2):
        assert demo_pipeline.main(["--out", str(out), "--seeds", "0"]) == 0
    assert json.loads((out / "stage_times.json").read_text())["SFT"] == 198.0
    assert json.loads((out / "stage_times_by_seed.json").read_text())["0"]["SFT"] == 198.0
    assert "seed 0: stages: SFT 3.3 min, base fully specified (done before)" in capsys.readouterr().out
