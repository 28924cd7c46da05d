"""Run directories never collide (two runs started in the same second) and a folder holding a run is not reused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarifylab import config
from clarifylab.config import PROJECT_ROOT
from clarifylab.errors import ConfigError
from clarifylab.run_dir import check_run_dir, reuse_allowed

sys.path.insert(0, str(Path(__file__).parent))
from test_config_composition import compose_resolved  # noqa: E402

STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\w+$")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_run_stamp_differs_between_processes_started_together():
    code = "from clarifylab.config import run_stamp; print(run_stamp())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
             for _ in range(3)]
    stamps = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(STAMP.match(s) for s in stamps), stamps
    assert len(set(stamps)) == 3, stamps


@pytest.mark.parametrize(("config_name", "overrides"), [("train", []), ("evaluate", []),
                                                        ("generate", ["task=synthetic_tables"]), ("agreement", [])])
def test_every_run_and_sweep_dir_ends_in_the_unique_stamp(config_name, overrides):
    cfg, _ = compose_resolved(config_name, overrides)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        value = str(OmegaConf.select(cfg, key))
        assert STAMP.search(value) and value.endswith(f"_{config._RUN_SUFFIX}"), (key, value)
    assert "run_dir_guard" in cfg.hydra.callbacks and cfg.reuse_run_dir is False


def test_a_folder_holding_files_is_refused_unless_reuse_is_allowed(tmp_path):
    check_run_dir("hydra.run.dir", tmp_path / "new", allowed=False)      # absent: fine
    check_run_dir("hydra.run.dir", tmp_path, allowed=False)              # empty: fine
    (tmp_path / "metrics.csv").write_text("step,loss\n")
    with pytest.raises(ConfigError,
                       match=r"^hydra.run.dir=.* already holds a run \(metrics.csv\); .*reuse_run_dir=true"):
        check_run_dir("hydra.run.dir", tmp_path, allowed=False)
    check_run_dir("hydra.run.dir", tmp_path, allowed=True)


def test_reuse_is_allowed_by_the_flag_by_resume_and_in_ddp_children(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not reuse_allowed(OmegaConf.create({"reuse_run_dir": False, "resume": None}))
    assert reuse_allowed(OmegaConf.create({"reuse_run_dir": True, "resume": None}))
    assert reuse_allowed(OmegaConf.create({"reuse_run_dir": False, "resume": "/runs/x/checkpoints/last.ckpt"}))
    monkeypatch.setenv("LOCAL_RANK", "1")   # Lightning restarts the script in the parent's hydra.run.dir
    assert reuse_allowed(OmegaConf.create({"reuse_run_dir": False, "resume": None}))


@pytest.mark.integration
def test_train_refuses_a_finished_run_folder_before_writing_into_it(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("old run\n")
    (run_dir / "metrics.json").write_text("{}\n")
    result = subprocess.run([sys.executable, "train.py", "experiment=smoke", f"hydra.run.dir={run_dir}"],
                            cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={run_dir} already holds a run (.hydra, metrics.json); choose a new folder (or drop "
        "hydra.run.dir for a fresh one), or pass reuse_run_dir=true to write into it on purpose"]
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "old run\n"   # untouched: refused before Hydra wrote
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "metrics.json"]


@pytest.mark.slow   # ~10 s alone, ~35 s on two busy cores
def test_two_smoke_trainings_started_together_write_two_complete_folders(tmp_path):
    """Issue 10 acceptance: `python train.py experiment=smoke` twice in the same second -> two folders, both whole."""
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), "experiment=smoke", "trainer.progress_bar=none"]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outputs]
    runs = sorted((tmp_path / "outputs" / "train" / "sft-tiny-synthetic_tables").iterdir())
    assert len(runs) == 2, runs
    for run in runs:
        assert (run / "policy" / "clarifylab_policy.json").is_file()
        assert (run / "csv" / "metrics.csv").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert sum(f"{run / 'policy'}" in output for output in outputs) == 1   # each process wrote its own folder


def test_the_act_sweep_continues_its_own_step_folders(tmp_path):
    """A re-run of a stopped sweep step writes into its folder again (IRPO then skips finished iterations): every
    step that names its hydra.run.dir also allows reusing it."""
    from clarifylab.methods.act.data_size_sweep import plan

    steps = plan(tmp_path, ["pacific", "ambigsql"], [50], scale="smoke")
    for step in steps:
        run_dirs = [arg for arg in step.argv if arg.startswith("hydra.run.dir=")]
        assert len(run_dirs) == 1 and "reuse_run_dir=true" in step.argv, step.name
        assert run_dirs[0].startswith(f"hydra.run.dir={tmp_path}")
