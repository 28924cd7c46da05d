"""ACT (on-policy DPO) with two real DDP processes on CPU: Alg. 1 pairs from the tiny teacher, then
Alg. 2 training where every rank samples its own shard and pads its generate calls."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clarifylab.config import PROJECT_ROOT

pytestmark = pytest.mark.integration

COUNTS_LINE = re.compile(r"ACT replacement counts: (\{.*\})")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)


def test_act_on_two_ddp_processes(tmp_path):
    corpus = tmp_path / "corpus" / "synthetic_tables"
    pairs = tmp_path / "generated" / "act_pairs"
    common = [f"paths.cache_dir={tmp_path / 'cache'}"]
    made = run("generate.py", "task=synthetic_tables", f"task.out_dir={corpus}", f"hydra.run.dir={tmp_path / 'g1'}")
    assert made.returncode == 0, made.stderr[-3000:]
    generated = run("generate.py", "task=act_pairs", "teacher@task.teacher=tiny", "task.max_examples=8",
                    f"task.dataset.dir={corpus}", f"task.out_dir={pairs}", f"hydra.run.dir={tmp_path / 'g2'}", *common)
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert len((pairs / "train.jsonl").read_text().splitlines()) == 8

    run_dir = tmp_path / "act"
    result = run("train.py", "trainer=act", "student=tiny", "hardware=ddp", "logger=csv", "trainer.max_steps=2",
                 "trainer.batch_size=2", "trainer.max_new_tokens=8", f"trainer.pairs_path={pairs / 'train.jsonl'}",
                 f"trainer.val_pairs_path={pairs / 'validation.jsonl'}", f"dataset.dir={corpus}",
                 f"hydra.run.dir={run_dir}", *common)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output and "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "distributed_backend=gloo" in output

    # each rank reports its own totals: 2 steps x batch 2 = its 4 of the 8 pairs, every one sampled
    totals = [ast.literal_eval(match) for match in COUNTS_LINE.findall(output)]
    assert len(totals) == 2, output[-3000:]
    for counts in totals:
        assert sum(counts.values()) == 4 and counts["not_sampled"] == 0

    # each rank sampled its own shard with its own seed: disjoint pairs, different texts
    samples = {rank: [json.loads(line) for line in (run_dir / "act_samples" / f"rank{rank}.jsonl").open()]
               for rank in (0, 1)}
    ids = {rank: {record["pair_id"] for record in records} for rank, records in samples.items()}
    assert len(ids[0]) == len(ids[1]) == 4 and not ids[0] & ids[1]
    assert all(record["rank"] == rank for rank, records in samples.items() for record in records)
    assert [r["sample"] for r in samples[0]] != [r["sample"] for r in samples[1]]

    (metrics_file,) = (run_dir / "csv").rglob("metrics.csv")
    with metrics_file.open() as handle:
        rows = list(csv.DictReader(handle))
    act_columns = [column for column in rows[0] if column.startswith("act/")]
    assert {"act/wrong_action", "act/bad_trajectory", "act/not_sampled"} <= set(act_columns)
    logged = [row for row in rows if row["act/not_sampled"] not in ("", None)]
    assert len(logged) == 2  # one row per optimizer step (rank 0 writes the CSV)
    assert (run_dir / "policy" / "clarifylab_policy.json").is_file()
