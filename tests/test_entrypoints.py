"""The three entry points as a user runs them: help, a smoke pipeline, and clear errors on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clarifylab.config import PROJECT_ROOT

pytestmark = pytest.mark.integration


def run(*args: str, cwd: Path = PROJECT_ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def test_help_lists_every_config_group():
    result = run("train.py", "--help")
    assert result.returncode == 0, result.stderr
    for group in ("student", "teacher", "dataset", "act_ablation", "trainer", "simulator", "classifier", "logger",
                  "hardware", "paths", "experiment"):
        assert f"{group}:" in result.stdout, group


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "synthetic_tables"
    result = run("generate.py", "task=synthetic_tables", f"task.out_dir={out}",
                 f"hydra.run.dir={out.parent / 'generate_run'}")
    assert result.returncode == 0, result.stderr
    assert "{'train': 200, 'validation': 40, 'test': 60}" in result.stdout
    return out


def test_smoke_train_evaluate_and_notebook(tmp_path, corpus_dir):
    """generate -> train (tiny) -> evaluate base and trained -> report -> analysis notebook, all through the CLI."""
    train = run("train.py", "experiment=smoke", f"dataset.dir={corpus_dir}", f"hydra.run.dir={tmp_path / 'sft'}")
    assert train.returncode == 0, train.stderr[-3000:]
    assert (tmp_path / "sft" / "policy" / "clarifylab_policy.json").is_file()
    assert (tmp_path / "sft" / "checkpoints" / "last.ckpt").is_file()
    for label, extra in (("base", []), ("sft", [f"policy_dir={tmp_path / 'sft' / 'policy'}"])):
        result = run("evaluate.py", "experiment=smoke", f"dataset.dir={corpus_dir}", f"label={label}",
                     f"hydra.run.dir={tmp_path / ('eval_' + label)}", f"paths.cache_dir={tmp_path / 'cache'}", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((tmp_path / f"eval_{label}" / "metrics.json").read_text())
        assert metrics["label"] == label and metrics["n_trajectories"] == 8
    report = run("experiments/report.py", str(tmp_path / "eval_base"), str(tmp_path / "eval_sft"),
                 "--out", str(tmp_path / "results.md"))
    assert report.returncode == 0, report.stderr
    assert "| base" in (tmp_path / "results.md").read_text()
    notebook = run("notebooks/inspect_runs.py", str(tmp_path))
    assert notebook.returncode == 0, notebook.stderr[-3000:]
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert "gold \\ predicted" in (tmp_path / "inspect.md").read_text()


def test_malformed_jsonl_line_is_named(tmp_path, corpus_dir):
    broken = tmp_path / "synthetic_tables"
    broken.mkdir()
    for split in ("train", "validation", "test"):
        lines = (corpus_dir / f"{split}.jsonl").read_text().splitlines()
        if split == "train":
            lines[2] = lines[2][:40]  # a truncated record on line 3
        (broken / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    result = run("train.py", "experiment=smoke", f"dataset.dir={broken}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert f"error: {broken / 'train.jsonl'}:3: not valid JSON" in result.stderr


def test_unknown_dataset_name_lists_the_known_ones(tmp_path):
    result = run("train.py", "experiment=smoke", "dataset.name=nope", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "dataset.name='nope' is not a known dataset; choose one of" in result.stderr
    assert (result.stdout + result.stderr).count("is not a known dataset") == 1   # printed once, not logged too
    assert "is not a known dataset" in (tmp_path / "train.log").read_text()      # and kept in the run's log file
    unknown_option = run("train.py", "dataset=nope", f"hydra.run.dir={tmp_path}")
    assert unknown_option.returncode != 0
    assert "Could not find 'dataset/nope'" in unknown_option.stderr
    assert "synthetic_tables" in unknown_option.stderr  # Hydra lists the available options


def test_missing_data_path_names_the_option(tmp_path):
    missing = tmp_path / "no-such-data"
    result = run("evaluate.py", "student=tiny", "dataset=pacific", f"paths.data_dir={missing}",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert str(missing / "pacific" / "validation.json") in result.stderr
    assert "paths.data_dir" in result.stderr or "CLARIFYLAB_DATA_DIR" in result.stderr


def test_ddp_two_cpu_processes(tmp_path, corpus_dir):
    """hardware=ddp: two real processes (gloo) train the tiny model and save one policy."""
    result = run("train.py", "experiment=smoke", "hardware=ddp", f"dataset.dir={corpus_dir}",
                 f"hydra.run.dir={tmp_path / 'ddp'}")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output and "distributed_backend=gloo" in output
    assert (tmp_path / "ddp" / "policy" / "clarifylab_policy.json").is_file()


def test_bad_input_is_reported_before_any_model_loads(tmp_path):
    """The pairs file is checked before the student loads: the student here does not exist either, and loading it
    first (as before clarifylab.preflight) would have reported the model instead."""
    result = run("train.py", "trainer=dpo", f"trainer.pairs_path={tmp_path / 'none.jsonl'}", "student=local",
                 f"student.name_or_path={tmp_path / 'no-model'}", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: trainer.pairs_path={tmp_path / 'none.jsonl'} does not exist: build the pairs first (python "
        "generate.py task=act_pairs task.out_dir=<folder>; with an act_paper experiment pass act_pairs_dir=<folder>) "
        "or point the key at an existing JSONL of preference pairs"]


def test_entry_point_runs_the_code_and_paths_of_its_own_checkout(tmp_path):
    """A second checkout sharing this venv (where clarifylab is installed from PROJECT_ROOT) uses its own src/ and
    writes under its own root, not under the installed tree."""
    checkout = tmp_path / "other-checkout"
    shutil.copytree(PROJECT_ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(PROJECT_ROOT / "conf", checkout / "conf")
    for script in ("train.py", "evaluate.py", "generate.py"):
        shutil.copy(PROJECT_ROOT / script, checkout / script)
    for script, extra in (("train.py", []), ("evaluate.py", []), ("generate.py", ["task=synthetic_tables"])):
        result = run(str(checkout / script), *extra, "--cfg", "job", "--resolve", "-p", "paths", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"root_dir: {checkout}\n" in result.stdout, (script, result.stdout)
        assert f"generated_dir: {checkout}/data/generated\n" in result.stdout
    probe = ("import runpy, sys; sys.argv = [sys.argv[1], '--help']; "
             "runpy.run_path(sys.argv[0], run_name='probe'); import clarifylab; print(clarifylab.__file__)")
    result = run("-c", probe, str(checkout / "train.py"), cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == str(checkout / "src" / "clarifylab" / "__init__.py")
