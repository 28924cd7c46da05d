"""fit_and_select: the fit / final validation / best-checkpoint tail both recipes share."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from clarifylab.training.lightning_setup import fit_and_select


class Module(torch.nn.Linear):
    def __init__(self) -> None:
        super().__init__(1, 1, bias=False)
        torch.nn.init.constant_(self.weight, 0.0)
        self.last_validated_step = 0


class Trainer:
    """Records fit/validate calls; validation sets ``monitor`` to ``final``."""

    def __init__(self, monitor: str, final: float | None, steps: int = 4) -> None:
        self.monitor, self.final, self.global_step = monitor, final, steps
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.calls: list[str] = []

    def fit(self, module, datamodule=None, ckpt_path=None):
        self.calls.append(f"fit:{ckpt_path}")
        self.callback_metrics["train/loss"] = torch.tensor(0.5)

    def validate(self, module, datamodule=None, verbose=True):
        self.calls.append("validate")
        if self.final is not None:
            self.callback_metrics[self.monitor] = torch.tensor(self.final)


def best_checkpoint(tmp_path, monitor: str, mode: str, score: float) -> ModelCheckpoint:
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"weight": torch.full((1, 1), 7.0)}}, path)
    callback = ModelCheckpoint(dirpath=tmp_path, monitor=monitor, mode=mode)
    callback.best_model_score, callback.best_model_path = torch.tensor(score), str(path)
    return callback


@pytest.mark.parametrize(("mode", "best", "final", "loads", "expected_best"), [
    ("max", 0.9, 0.2, True, 0.9),    # reward margin: the checkpoint beats the final weights
    ("max", 0.1, 0.2, False, 0.2),   # the final weights are better: keep them
    ("min", 0.3, 0.8, True, 0.3),    # loss: lower is better
    ("min", 0.9, 0.8, False, 0.8),
])
def test_best_weights_are_loaded_only_when_they_beat_the_final_ones(tmp_path, mode, best, final, loads, expected_best):
    module, trainer = Module(), Trainer("val/m", final)
    callbacks = [best_checkpoint(tmp_path, "val/m", mode, best)]
    outcome = fit_and_select(trainer, module, None, callbacks, resume="r.ckpt", has_validation=True, monitor="val/m",
                             mode=mode, policy_from="best")
    assert trainer.calls == ["fit:r.ckpt", "validate"]  # last validated at step 0, stopped at step 4
    assert outcome.best == pytest.approx(expected_best) and outcome.last == pytest.approx(final)
    assert outcome.train_loss == 0.5 and outcome.best_path == str(tmp_path / "best.ckpt")
    assert float(module.weight.detach()) == (7.0 if loads else 0.0)


def test_policy_from_last_and_no_validation_keep_the_final_weights(tmp_path):
    module, trainer = Module(), Trainer("val/m", None)
    callbacks = [best_checkpoint(tmp_path, "val/m", "max", 0.9)]
    outcome = fit_and_select(trainer, module, None, callbacks, resume=None, has_validation=False, monitor="val/m",
                             mode="max", policy_from="last")
    assert trainer.calls == ["fit:None"] and float(module.weight.detach()) == 0.0
    assert math.isnan(outcome.last) and outcome.best == pytest.approx(0.9)
    assert math.isnan(outcome.last_value("val/other"))


def test_a_run_continued_in_place_keeps_the_earlier_csv_metrics(tmp_path):
    # Lightning's CSVLogger deletes an existing metrics.csv when it starts: resuming in place (hydra.run.dir=<run>
    # resume=...) lost the rows before the checkpoint (seen on experiment=smoke).
    from clarifylab.training.lightning_setup import build_loggers

    node = {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": str(tmp_path), "name": "csv",
                    "version": ""}}
    csv_dir = tmp_path / "csv"
    for segment, steps in enumerate(([0, 1, 2], [3, 4]), start=1):
        (logger,) = build_loggers(node)
        for step in steps:
            logger.log_metrics({"train/loss": float(step)}, step=step)
        logger.save()
        if segment == 2:
            assert (csv_dir / "metrics.part1.csv").read_text().splitlines() == [
                "step,train/loss", "0,0.0", "1,1.0", "2,2.0"]
    assert (csv_dir / "metrics.csv").read_text().splitlines() == ["step,train/loss", "3,3.0", "4,4.0"]
    build_loggers(node)
    assert sorted(p.name for p in csv_dir.glob("metrics*.csv")) == ["metrics.part1.csv", "metrics.part2.csv"]
