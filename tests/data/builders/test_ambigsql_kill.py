"""generate.py task=ambigsql killed with SIGKILL midway and run again ends with the same split files as an
uninterrupted run (no duplicate or lost progress records), with the tiny teacher on a 60-request Spider tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clarifylab.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

N_REQUESTS = 60


def spider_tree(root: Path, build_spider_tree) -> Path:
    """The spider_small tree with a dev.json of N_REQUESTS executable requests on the school database."""
    spider = build_spider_tree(root / "spider")
    records = [{"db_id": "school", "question": f"How many teachers are older than {age} years?",
                "query": f"SELECT count(*) FROM teacher WHERE age > {age}"} for age in range(N_REQUESTS)]
    (spider / "dev.json").write_text(json.dumps(records), encoding="utf-8")
    return spider


def command(data_dir: Path, out: Path, cache: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "generate.py", "task=ambigsql", "teacher@task.teacher=tiny", "task.sources=[dev.json]",
            "task.batch_size=1", "task.max_new_tokens=8", "task.require_question_mark=false",
            f"paths.data_dir={data_dir}", f"paths.cache_dir={cache}", f"task.out_dir={out}", f"hydra.run.dir={run_dir}"]


def logged_ids(out: Path) -> list[str]:
    path = out / "progress.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_killed_build_resumes_to_the_uninterrupted_result(tmp_path, build_spider_tree):
    data_dir = tmp_path / "data"
    spider_tree(data_dir, build_spider_tree)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(command(data_dir, tmp_path / "whole", tmp_path / "cache_whole", tmp_path / "run0"),
                           cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "resumed"
    args = command(data_dir, out, tmp_path / "cache_resumed", tmp_path / "run1")
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(logged_ids(out)) < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    done_before = len(logged_ids(out))
    assert 10 <= done_before < N_REQUESTS and not (out / "manifest.json").exists()

    again = subprocess.run(args[:-1] + [f"hydra.run.dir={tmp_path / 'run2'}"], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    ids = logged_ids(out)
    assert len(ids) == len(set(ids)) == N_REQUESTS
    for split in ("train", "validation", "test"):
        assert (out / f"{split}.jsonl").read_text() == (tmp_path / "whole" / f"{split}.jsonl").read_text(), split
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["processed"] == N_REQUESTS
    assert manifest["counts"] == json.loads((tmp_path / "whole" / "manifest.json").read_text())["counts"]
    assert manifest["usage"]["teacher"]["conversations"] < json.loads(
        (tmp_path / "whole" / "manifest.json").read_text())["usage"]["teacher"]["conversations"]
