"""The ACT data-size sweep plan: step order, per-setting overrides, markers; and a smoke-scale run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clarifylab.config import PROJECT_ROOT
from clarifylab.errors import ConfigError
from clarifylab.methods.act.data_size_sweep import plan

PACIFIC = Path(os.environ.get("CLARIFYLAB_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data")) / "pacific"


def test_plan_orders_pairs_sft_then_irpo_act_then_evaluations(tmp_path):
    steps = plan(tmp_path, ["pacific"], [50, 250], scale="paper")
    assert [s.name for s in steps] == [
        "pairs pacific-c50", "sft pacific-c50", "irpo pacific-c50", "act pacific-c50",
        "evaluate pacific-c50 sft", "evaluate pacific-c50 irpo", "evaluate pacific-c50 act",
        "pairs pacific-c250", "sft pacific-c250", "irpo pacific-c250", "act pacific-c250",
        "evaluate pacific-c250 sft", "evaluate pacific-c250 irpo", "evaluate pacific-c250 act"]
    act = steps[3].argv
    assert act[:3] == ["train.py", "experiment=act_paper/pacific_act", "dataset.conversations=50"]
    assert f"sft_policy={tmp_path / 'pacific' / 'sft' / 'c50' / 'policy'}" in act
    assert f"act_pairs_dir={tmp_path / 'pairs' / 'pacific-c50'}" in act
    assert steps[3].marker == tmp_path / "pacific" / "act" / "c50" / "policy" / "clarifylab_policy.json"
    # N=250 on PACIFIC: the larger pool on every command of the setting (pairs get it under task.dataset)
    assert "task.dataset.eval_fraction=0.05" in steps[7].argv
    assert all("dataset.eval_fraction=0.05" in s.argv for s in steps[8:])
    assert not any("eval_fraction" in arg for s in steps[:7] for arg in s.argv)
    assert steps[4].marker == tmp_path / "eval" / "pacific-c50-sft" / "metrics.json"


def test_ambigsql_is_built_first_and_read_from_the_sweep_folder(tmp_path):
    steps = plan(tmp_path, ["ambigsql"], [50], trainers=["sft"], scale="cpu", steps=3)
    assert [s.name for s in steps] == ["build ambigsql", "sft ambigsql-c50", "evaluate ambigsql-c50 sft"]
    assert "task.max_items=100" in steps[0].argv and "teacher@task.teacher=smollm2" in steps[0].argv
    assert f"dataset.dir={tmp_path / 'data' / 'ambigsql'}" in steps[1].argv
    assert {"student=smollm2", "trainer.max_steps=3", "dataset.max_train_examples=12"} <= set(steps[1].argv)


def test_unknown_names_are_refused():
    with pytest.raises(ConfigError, match="unknown dataset"):
        plan("x", ["spider"], [50])
    with pytest.raises(ConfigError, match="unknown scale"):
        plan("x", ["pacific"], [50], scale="huge")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (PACIFIC / "validation.json").is_file(),
                    reason=f"PACIFIC not found under {PACIFIC} (set CLARIFYLAB_DATA_DIR to the shared data folder)")
def test_smoke_scale_sweep_runs_resumes_and_prints_table_1(tmp_path):
    command = [sys.executable, "experiments/act_data_sweep.py", str(tmp_path / "sweep"), "--scale", "smoke",
               "--datasets", "pacific", "--sizes", "50", "--steps", "2", "--eval-examples", "4", "--",
               f"paths.cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CLARIFYLAB_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    tables = (tmp_path / "sweep" / "tables.md").read_text()
    assert "## Table 1: PACIFIC" in tables
    for approach in ("sft", "irpo", "act"):
        assert f"| {approach} | 50 |" in tables
    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("skipped") == 7
