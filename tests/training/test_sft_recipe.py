"""run_sft end to end on the tiny model: outputs, the saved policy, and exact resumption."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.data.synthetic_tables import write_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.training.sft_recipe import pick_sample_examples, run_sft


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic_tables")
    write_synthetic_corpus(directory, seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})
    return directory  # 8 train / 4 validation examples


def make_cfg(data_dir: Path, output_dir: Path, **trainer_overrides):
    trainer = {
        "name": "sft", "lr": 1e-2, "weight_decay": 0.0, "warmup_ratio": 0.0, "lr_schedule": "constant",
        "max_epochs": 3, "max_steps": -1, "batch_size": 2, "eval_batch_size": 4, "accumulate_grad_batches": 1,
        "gradient_clip_val": 1.0, "max_length": 512, "loss_on": "all_assistant", "truncation": "error",
        "val_check_interval": 1.0, "checkpoint_every_n_steps": 3, "log_every_n_steps": 1, "num_workers": 0,
        "sample_generations": 0, "limit_val_batches": 1.0, "progress_bar": "none", "model_summary": False,
    }
    trainer.update(trainer_overrides)
    trainer = {**OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "trainer" / "sft.yaml")), **trainer}
    return OmegaConf.create({
        "seed": 0, "output_dir": str(output_dir), "resume": None,
        "paths": {"cache_dir": str(output_dir / "cache")},
        "student": {"_target_": "clarifylab.models.ModelSpec", "source": "tiny", "seed": 0,
                    "lora": {"_target_": "clarifylab.models.LoraSpec", "enabled": True, "r": 4, "alpha": 8,
                             "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}},
        "dataset": {**OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "synthetic_tables.yaml")),
                    "dir": str(data_dir), "auto_generate": False},
        "trainer": trainer,
        "hardware": {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "num_nodes": 1},
        "logger": {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": str(output_dir),
                           "name": "csv", "version": ""}},
    })


def csv_train_losses(output_dir: Path) -> dict[int, float]:
    """step -> train/loss from the CSVLogger's metrics.csv."""
    with open(output_dir / "csv" / "metrics.csv") as handle:
        return {int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(handle) if row["train/loss"]}


@pytest.mark.parametrize(("policy_from", "lora", "epochs", "lr"), [("last", True, 2, 1e-2), ("best", False, 6, 5e-2)])
def test_run_writes_policy_checkpoints_samples_and_metrics(data_dir, tmp_path, policy_from, lora, epochs, lr):
    import torch

    from clarifylab.data.registry import load_dataset_split
    from clarifylab.models import load_policy
    from clarifylab.training.sft_data import SFTDataModule
    from clarifylab.training.sft_module import SFTModule

    out = tmp_path / "run"
    cfg = make_cfg(data_dir, out, sample_generations=2, max_epochs=epochs, policy_from=policy_from, lr=lr)
    cfg.student.lora.enabled = lora
    result = run_sft(cfg)
    steps = 4 * epochs
    assert set(result) == {"val/loss", "val/loss_last", "train/loss", "train/steps", "train/tokens_seen"}
    assert result["train/steps"] == steps and all(math.isfinite(value) for value in result.values())
    if lora:
        assert result["val/loss"] == result["val/loss_last"]
    else:  # full fine-tuning at this lr overfits the 8 examples within 6 epochs: best != last
        assert result["val/loss"] < result["val/loss_last"]
    checkpoints = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert checkpoints[-1] == "last.ckpt" and checkpoints[0].startswith("best-step=")
    samples = [json.loads(line) for line in (out / "samples" / f"step_{steps}.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and {row["gold_action"] for row in samples} == {"answer", "clarify"}
    assert set(csv_train_losses(out)) == set(range(steps))
    # The saved policy scores the validation set exactly like the model it was saved from.
    policy, tokenizer, spec = load_policy(out / "policy", cache_dir=tmp_path / "cache")
    assert spec.source == "tiny" and type(policy).__name__.startswith("Peft") == lora
    val = load_dataset_split(cfg.dataset, "validation", cfg.paths)
    module = SFTModule(policy, lr=1e-3)
    module.eval()
    dm = SFTDataModule(val, val, tokenizer, batch_size=4, eval_batch_size=4, max_length=512)
    dm.setup()
    total = count = 0.0
    with torch.no_grad():
        for batch in dm.val_dataloader():
            loss, n_tokens = module._loss(batch)
            total, count = total + float(loss) * int(n_tokens), count + int(n_tokens)
    expected = result["val/loss_last"] if policy_from == "last" else result["val/loss"]
    assert total / count == pytest.approx(expected, abs=1e-5)


class StopAt(pl.Callback):
    """Simulates a preempted job: stops training after optimizer step ``k``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.k:
            trainer.should_stop = True


def interrupted_run(data_dir: Path, tmp_path: Path, k: int, via: str, **trainer_overrides) -> dict[int, float]:
    """Train to step ``k`` (max_steps or a simulated preemption), resume from last.ckpt, return the
    per-step losses of both parts."""
    first, second = tmp_path / "first", tmp_path / "second"
    cfg = make_cfg(data_dir, first, **trainer_overrides)
    if via == "max_steps":
        cfg.trainer.max_steps = k
        run_sft(cfg)
    else:
        run_sft(cfg, extra_callbacks=[StopAt(k)])
    assert set(csv_train_losses(first)) >= set(range(k))
    resumed = make_cfg(data_dir, second, **trainer_overrides)
    resumed.resume = str(first / "checkpoints" / "last.ckpt")
    run_sft(resumed)
    losses = {step: loss for step, loss in csv_train_losses(first).items() if step < k}
    losses.update(csv_train_losses(second))
    return losses


def test_resume_after_max_steps_continues_the_same_loss_curve(data_dir, tmp_path):
    run_sft(make_cfg(data_dir, tmp_path / "a"))
    reference = csv_train_losses(tmp_path / "a")
    assert len(reference) == 12  # 3 epochs x 4 batches
    resumed = interrupted_run(data_dir, tmp_path / "b", k=6, via="max_steps")  # mid-epoch 1
    assert sorted(resumed) == sorted(reference)
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], abs=1e-5), step


def test_preempted_run_with_warmup_and_cosine_resumes_exactly_and_needs_the_rng_state(data_dir, tmp_path,
                                                                                      monkeypatch):
    schedule = {"lr_schedule": "cosine", "warmup_ratio": 0.2, "max_epochs": 2}
    run_sft(make_cfg(data_dir, tmp_path / "a", **schedule))
    reference = csv_train_losses(tmp_path / "a")
    resumed = interrupted_run(data_dir, tmp_path / "b", k=3, via="preemption", **schedule)  # mid-epoch 0
    assert sorted(resumed) == sorted(reference) == list(range(8))
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], abs=1e-5), step
    # Without restoring the RNG states, LoRA dropout draws different masks after the resume.
    monkeypatch.setattr("clarifylab.training.sft_module.restore_rng_states", lambda states: None)
    no_rng = interrupted_run(data_dir, tmp_path / "c", k=3, via="preemption", **schedule)
    assert max(abs(no_rng[step] - reference[step]) for step in range(3, 8)) > 1e-4


def test_resume_refuses_a_different_data_order_or_a_missing_file(data_dir, tmp_path):
    cfg = make_cfg(data_dir, tmp_path / "a", max_steps=3)
    result = run_sft(cfg)
    assert math.isfinite(result["val/loss"])  # validated at the end although max_steps cut the epoch short
    other = make_cfg(data_dir, tmp_path / "b", batch_size=4)
    other.resume = str(tmp_path / "a" / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="batch_size"):
        run_sft(other)
    other.resume = str(tmp_path / "nowhere.ckpt")
    with pytest.raises(ConfigError, match="resume="):
        run_sft(other)


def test_sample_examples_alternate_between_actions(data_dir):
    from clarifylab.data.synthetic_tables import load_synthetic_split

    val = load_synthetic_split(data_dir, "validation")
    picked = pick_sample_examples(val, 3)
    assert [example.action.value for example in picked] == ["answer", "clarify", "answer"]
    assert len(pick_sample_examples(val, 10)) == len(val)
