"""generate.py task=ts_curriculum and evaluate.py protocol=ts_benchmark end to end with the tiny model (slow)."""

import json
import os
import subprocess
import sys

import pytest

from clarifylab.config import PROJECT_ROOT

from ts_scripted import write_tatqa


def run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_build_then_benchmark(tmp_path):
    source = write_tatqa(tmp_path / "tatqa.json")
    build = tmp_path / "build"
    result = run("generate.py", "task=ts_curriculum", f"task.dataset.path={source}", "teacher@task.teacher=tiny",
                 "teacher@task.student=tiny", f"task.out_dir={build}", "task.test_fraction=1.0",
                 f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'gen'}")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["counts"]["records"] == 16 and manifest["counts"]["splits"]["test"] == 16
    assert set(manifest["counts"]["yield"]) == {"column", "row", "value", "question"}
    result = run("evaluate.py", "experiment=ts/benchmark", "student=tiny", f"dataset.dir={build}", "logger=none",
                 "generation.max_new_tokens=8", f"paths.cache_dir={tmp_path / 'cache'}",
                 f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_pairs"] == 16 and set(metrics["by_strategy"]) == {"column", "row", "value", "question", "all"}
    assert metrics["data_file"] == str(build / "test.jsonl") and len(metrics["data_sha256"]) == 64
    assert len((tmp_path / "eval" / "pairs.jsonl").read_text().splitlines()) == 16
    # A changed setting on the same out_dir is refused with one line, before any model loads.
    result = run("generate.py", "task=ts_curriculum", f"task.dataset.path={source}", "teacher@task.teacher=tiny",
                 "teacher@task.student=tiny", f"task.out_dir={build}", "task.test_fraction=1.0", "task.judge=rule",
                 f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'gen2'}")
    assert result.returncode != 0 and "other settings" in result.stderr
