"""DeepSpeed ZeRO on CPU processes: the strategy factory, the hardware configs, and real training runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.errors import ConfigError

register_resolvers()


def test_cpu_accelerator_gets_the_gloo_subclass(tmp_path, monkeypatch):
    from pytorch_lightning.strategies import DeepSpeedStrategy

    from clarifylab.training.deepspeed_cpu import CPUDeepSpeedStrategy, deepspeed_strategy

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    strategy = deepspeed_strategy("cpu", stage=2, extensions_dir=str(tmp_path / "ext"))
    assert isinstance(strategy, CPUDeepSpeedStrategy)
    assert strategy.process_group_backend == "gloo"
    assert strategy.config["zero_optimization"]["stage"] == 2
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "ext") and (tmp_path / "ext").is_dir()
    gpu = deepspeed_strategy("gpu", stage=3)
    assert type(gpu) is DeepSpeedStrategy and gpu.config["zero_optimization"]["stage"] == 3


def test_bad_stage_and_zero3_rank0_sampling_are_refused():
    from clarifylab.training.deepspeed_cpu import deepspeed_strategy

    with pytest.raises(ConfigError, match="must be a ZeRO stage"):
        deepspeed_strategy("cpu", stage=4)
    with pytest.raises(ConfigError, match="set trainer.sample_generations=0"):
        deepspeed_strategy("cpu", stage=3, devices=2, sample_generations=2)
    deepspeed_strategy("cpu", stage=3, devices=1, sample_generations=2)  # one process: nothing to wait for
    deepspeed_strategy("cpu", stage=2, devices=2, sample_generations=2)  # ZeRO-2 keeps whole weights per rank


@pytest.mark.parametrize("option,stage", [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_hardware_options_pick_the_strategy_from_the_accelerator(option, stage, tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate
    from pytorch_lightning.strategies import DeepSpeedStrategy

    from clarifylab.training.deepspeed_cpu import CPUDeepSpeedStrategy

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    cache = f"paths.cache_dir={tmp_path}"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        gpu = compose(config_name="train", overrides=[f"hardware={option}", "trainer.sample_generations=0", cache])
        cpu = compose(config_name="train", overrides=[f"hardware={option}", "hardware.accelerator=cpu",
                                                      "hardware.precision=32-true", cache])
    GlobalHydra.instance().clear()
    assert gpu.hardware.accelerator == "gpu" and gpu.hardware.precision == "bf16-mixed"
    gpu_strategy = instantiate(gpu.hardware.strategy)
    assert type(gpu_strategy) is DeepSpeedStrategy
    cpu_strategy = instantiate(cpu.hardware.strategy)
    assert isinstance(cpu_strategy, CPUDeepSpeedStrategy)
    assert cpu_strategy.config["zero_optimization"]["stage"] == stage
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(tmp_path / "torch_extensions")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds_corpus") / "synthetic_tables"
    result = run("generate.py", "task=synthetic_tables", f"task.out_dir={out}",
                 f"hydra.run.dir={out.parent / 'generate_run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _adapter(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "policy" / "adapter_model.safetensors")


@pytest.mark.integration
def test_zero2_on_one_cpu_process_trains_exactly_like_plain_cpu(tmp_path, corpus_dir):
    """Same seed, data and AdamW: ZeRO-2 (1 process) must produce the plain run's LoRA weights; its
    checkpoints are DeepSpeed directories."""
    import torch

    common = ["experiment=smoke", f"dataset.dir={corpus_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    plain = run("train.py", *common, "hardware=cpu", f"hydra.run.dir={tmp_path / 'cpu'}")
    assert plain.returncode == 0, plain.stderr[-3000:]
    zero2 = run("train.py", *common, "hardware=deepspeed_zero2", "hardware.accelerator=cpu",
                "hardware.precision=32-true", f"hydra.run.dir={tmp_path / 'zero2'}")
    assert zero2.returncode == 0, zero2.stderr[-3000:]
    assert "initializing deepspeed distributed: GLOBAL_RANK: 0, MEMBER: 1/1" in zero2.stdout + zero2.stderr
    expected, got = _adapter(tmp_path / "cpu"), _adapter(tmp_path / "zero2")
    assert sorted(expected) == sorted(got) and len(got) > 0
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    assert (tmp_path / "zero2" / "checkpoints" / "last.ckpt" / "checkpoint" / "mp_rank_00_model_states.pt").is_file()
    assert (tmp_path / "zero2" / "samples" / "step_6.jsonl").is_file()


@pytest.mark.integration
def test_zero3_on_two_cpu_processes(tmp_path, corpus_dir):
    """ZeRO-3 across two gloo processes: both ranks join, each writes its shard, rank 0 saves the policy."""
    result = run("train.py", "experiment=smoke", f"dataset.dir={corpus_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
                 "hardware=deepspeed_zero3", "hardware.accelerator=cpu", "hardware.precision=32-true",
                 "hardware.devices=2", "trainer.sample_generations=0", f"hydra.run.dir={tmp_path / 'zero3'}")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in output and "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    shards = tmp_path / "zero3" / "checkpoints" / "last.ckpt" / "checkpoint"
    for rank in (0, 1):
        assert (shards / f"zero_pp_rank_{rank}_mp_rank_00_model_states.pt").is_file()
    adapter = _adapter(tmp_path / "zero3")
    # LoRA tensors are below ZeRO-3's persistence threshold (1e5 elements), so they stay whole on every rank
    assert adapter and all(tensor.numel() > 0 for tensor in adapter.values())
