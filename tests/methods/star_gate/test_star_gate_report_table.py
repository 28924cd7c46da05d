"""STaR-GATE win-rate runs in experiments/report.py: one row per configuration and model m_t, only replicates (runs
that differ in nothing but seeds) averaged; checked on hand-made metrics.json files."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import statistics

import pytest

from clarifylab.config import PROJECT_ROOT
from clarifylab.methods.star_gate.report_table import aggregate_win_rates, model_rows


def load_report_script():
    spec = importlib.util.spec_from_file_location("report_script_star_gate", PROJECT_ROOT / "experiments" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_entry(label, single, both, flips):
    return {"label": label, "single_win_rate": single, "single_ci_low": single - 0.2, "single_ci_high": single + 0.2,
            "single_n": 10, "single_dropped": 0, "both_win_rate": both, "both_ci_low": both - 0.1,
            "both_ci_high": both + 0.1, "both_strict_win_rate": both - 0.25, "wins": 3.0, "losses": 2.0,
            "flips": float(flips), "both_dropped": 0}


def win_rate_run(seed, m1, m2, train_settings="aaaa", judge="judge-x", eval_settings="eeee"):
    """A star_gate_win_rate metrics.json: m1 and m2 rows as (single, both, flips)."""
    return {"label": "star_gate_cpu", "dataset": "stargate", "split": "test", "model": "smollm2",
            "approach": "star_gate",
            "trainer": "star_gate", "train_dataset": "stargate", "seed": seed, "protocol": "star_gate_win_rate",
            "data_file": "/d/instruct-questions/test.json", "data_sha256": "ab" * 32, "n_examples": 10,
            "max_examples": None, "max_turns": 3, "simulator": "persona_roleplayer", "simulator_model": "rp",
            "train_regularization": "self", "train_iterations": 2, "train_settings": train_settings,
            "eval_settings": eval_settings, "judge_model": judge, "win_rate_model": "m2", "win_rate": m2[0],
            "win_rate_both": m2[1], "flips": m2[2], "by_model": [model_entry("m1", *m1), model_entry("m2", *m2)],
            "by_turns": {"m1": {}}, "logprob_curve": [{"questioner": "m0"}], "usage": {"judge": {"calls": 1}},
            "questioner_models": {"m0": "local"}}


def write_run(root, name, metrics):
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(metrics))


def test_replicates_average_and_other_settings_stay_apart():
    runs = [win_rate_run(0, (0.6, 0.55, 2), (0.7, 0.65, 1)), win_rate_run(1, (0.4, 0.45, 4), (0.8, 0.75, 3)),
            win_rate_run(0, (0.9, 0.9, 0), (0.9, 0.9, 0), train_settings="bbbb"),  # an ablation's training run
            win_rate_run(0, (0.1, 0.1, 9), (0.1, 0.1, 9), judge="judge-y"),        # another judge
            win_rate_run(0, (0.2, 0.2, 8), (0.2, 0.2, 8), eval_settings="ffff"),   # another evaluation setting
            {"label": "act", "protocol": "multiturn", "dataset": "pacific", "macro_f1": 0.5}]
    assert [(r["questioner"], r["seed"]) for r in model_rows(runs)] == [
        ("m1", 0), ("m2", 0), ("m1", 1), ("m2", 1), ("m1", 0), ("m2", 0), ("m1", 0), ("m2", 0), ("m1", 0), ("m2", 0)]
    assert "win_rate" not in model_rows(runs)[0] and "by_model" not in model_rows(runs)[0]
    rows = aggregate_win_rates(runs)
    assert [(r["questioner"], r["runs"]) for r in rows] == [("m1", 2), ("m2", 2), ("m1", 1), ("m2", 1), ("m1", 1),
                                                             ("m2", 1), ("m1", 1), ("m2", 1)]
    m1 = rows[0]
    assert m1["single_win_rate"] == pytest.approx(0.5) and m1["single_win_rate_std"] == pytest.approx(
        statistics.stdev([0.6, 0.4]))
    assert m1["both_win_rate"] == pytest.approx(0.5) and m1["flips"] == pytest.approx(3.0)
    assert m1["single_ci_low"] == pytest.approx(0.3) and m1["both_ci_high"] == pytest.approx(0.6)
    assert m1["seed"] == "0,1" and m1["single_n"] == 10
    assert [r["train_settings"] for r in rows[2:4]] == ["bbbb", "bbbb"] and rows[4]["judge_model"] == "judge-y"
    assert rows[6]["eval_settings"] == "ffff"


def test_report_script_prints_the_win_rate_table_next_to_the_flat_one(tmp_path, capsys):
    root = tmp_path / "runs"
    write_run(root, "sg0", win_rate_run(0, (0.6, 0.55, 2), (0.7, 0.65, 1)))
    write_run(root, "sg1", win_rate_run(1, (0.4, 0.45, 4), (0.8, 0.75, 3)))
    write_run(root, "sg_ablation", win_rate_run(0, (0.25, 0.3, 5), (0.35, 0.4, 6), train_settings="bbbb"))
    write_run(root, "flat", {"label": "base", "dataset": "pacific", "model": "tiny", "approach": "base",
                             "macro_f1": 0.5, "n_trajectories": 4})
    out = tmp_path / "report.md"
    assert load_report_script().main([str(root), "--out", str(out), "--title", "T"]) == 0
    assert "report: 5 rows" in capsys.readouterr().out  # 1 flat row + 4 win-rate rows (two seeds averaged)
    markdown = out.read_text()
    assert "## STaR-GATE win rates vs m0" in markdown and "| Macro F1 |" in markdown
    table = markdown.split("## STaR-GATE win rates vs m0")[1]
    lines = [line for line in table.splitlines() if line.startswith("| star_gate_cpu")]
    assert len(lines) == 4
    header = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    cells = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines]
    assert [(c["m_t"], c["Runs"], c["Win (1 order)"], c["Win (2 orders)"]) for c in cells] == [
        ("m1", "2", "0.500 ± 0.141", "0.500 ± 0.071"), ("m2", "2", "0.750 ± 0.071", "0.700 ± 0.071"),
        ("m1", "1", "0.250", "0.300"), ("m2", "1", "0.350", "0.400")]
    assert cells[0]["1-order CI low"] == "0.300 ± 0.141" and cells[2]["2-order CI high"] == "0.400"
    assert cells[0]["Regularization"] == "self" and cells[0]["Judge"] == "judge-x"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [r.get("questioner") or "" for r in rows] == ["", "m1", "m2", "m1", "m2"]
    assert float(rows[1]["single_win_rate"]) == pytest.approx(0.5)
    # Only win-rate runs: no flat table, the win-rate table alone.
    only = tmp_path / "only.md"
    assert load_report_script().main([str(root / "sg0"), "--out", str(only), "--title", "Only"]) == 0
    assert "report: 2 rows" in capsys.readouterr().out and "| m2 |" in only.read_text()


def test_train_settings_digest_ignores_the_seed_but_not_an_ablation(tmp_path):
    from clarifylab.methods.star_gate.win_rate_eval import settings_digest, train_settings

    def train_dir(name, **changes):
        sampling = {"seed": 0, "iteration": 0, "split": "A", "num_conversations": 4, "regularization": "self",
                    "roleplayer": {"kind": "transformers"}, **changes}
        (tmp_path / name / "iter_0").mkdir(parents=True)
        (tmp_path / name / "iter_0" / "sampling.json").write_text(json.dumps(sampling))
        (tmp_path / name / ".hydra").mkdir()
        (tmp_path / name / ".hydra" / "config.yaml").write_text("seed: 0\ntrainer:\n  lr: 0.0002\n  name: star_gate\n")
        return tmp_path / name

    base = settings_digest(train_settings(train_dir("seed0"), 2))
    assert train_settings(tmp_path / "seed0", 2)["trainer"] == {"lr": 0.0002, "name": "star_gate"}
    assert settings_digest(train_settings(train_dir("seed1", seed=1), 2)) == base  # a replicate
    assert settings_digest(train_settings(train_dir("none", regularization="none"), 2)) != base  # an ablation
    assert settings_digest(train_settings(tmp_path / "seed0", 3)) != base  # another number of iterations
    assert len(base) == 12 and int(base, 16) >= 0
