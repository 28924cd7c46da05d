"""Trainer, loggers and checkpoint callbacks from the Hydra config, shared by the training recipes."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, RichProgressBar, TQDMProgressBar

from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"
# Lightning warns that a mid-epoch resume replays the epoch unless the *dataloader* is stateful; our
# DataModules restore the data position themselves (training/sft_data.py), so the warning is wrong here.
NOT_RESUMABLE_WARNING = r"You're resuming from a checkpoint that ended before the epoch ended"


def config_as_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain dict, interpolations resolved where possible (Hydra-only resolvers such as
    ``${hydra:...}`` cannot be resolved outside a Hydra app; then the raw values are kept)."""
    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # noqa: BLE001 - any resolver failure: fall back to the unresolved config
        log.debug("config not fully resolvable (%s); logging it unresolved", error)
        return OmegaConf.to_container(cfg, resolve=False)


def build_loggers(logger_cfg: Mapping[str, Any] | None) -> list[Any]:
    """Instantiate every logger config (each has a ``_target_``); ``None``/empty gives no logger. A CSV logger's
    earlier ``metrics.csv`` is kept (:func:`keep_earlier_csv_metrics`)."""
    loggers = []
    for name, one in (logger_cfg or {}).items():
        if one is None:
            continue
        if "_target_" not in one:
            raise ConfigError(f"logger.{name} has no _target_ (e.g. pytorch_lightning.loggers.CSVLogger)")
        logger = instantiate(one)
        if isinstance(logger, pl.loggers.CSVLogger):
            keep_earlier_csv_metrics(Path(logger.log_dir))
        loggers.append(logger)
    return loggers


def stage_loggers(sub_cfg: Any, run_dir: str | Path, stage_dir: str | Path, iteration: int, default_name: str) -> None:
    """Point the loggers of one stage's sub-config (an IRPO iteration, a STaR-GATE round) at that stage, in place:
    a logger whose ``save_dir`` is the run folder ``run_dir`` writes into ``stage_dir``, and a W&B logger gets its
    own run ``<name>-iter<iteration>`` grouped under ``<name>`` (``name``: the logger's, else ``default_name``);
    the caller finishes each stage's W&B run so that the next stage starts a new one."""
    for key, logger in (sub_cfg.logger or {}).items():
        if logger is not None and "save_dir" in logger and str(logger.save_dir) == str(run_dir):
            sub_cfg.logger[key].save_dir = str(stage_dir)
        if logger is not None and str(logger.get("_target_", "")).endswith("WandbLogger"):  # optional W&B args
            name = logger.get("name") or default_name
            sub_cfg.logger[key].name = f"{name}-iter{iteration}"
            sub_cfg.logger[key].group = logger.get("group") or name


def keep_earlier_csv_metrics(log_dir: Path) -> Path | None:
    """Move ``<log_dir>/metrics.csv`` to ``metrics.part<k>.csv`` (k = 1, 2, ...: one per earlier segment) and return
    the new path (None when there is no such file). Lightning's CSVLogger deletes an existing ``metrics.csv`` when it
    starts writing, so a run continued in place (``hydra.run.dir=<run> resume=<run>/checkpoints/last.ckpt``) would
    lose the rows logged before the checkpoint; its new ``metrics.csv`` starts at the resumed step."""
    current = log_dir / "metrics.csv"
    if not current.is_file():
        return None
    k = 1
    while (log_dir / f"metrics.part{k}.csv").exists():
        k += 1
    kept = log_dir / f"metrics.part{k}.csv"
    current.rename(kept)
    log.info("kept the earlier %s as %s (a CSV logger restarts its metrics file)", current, kept.name)
    return kept


def checkpoint_callbacks(checkpoint_dir: str | Path, every_n_steps: int | None,
                         monitor: str | None = "val/loss", mode: str = "min") -> list[ModelCheckpoint]:
    """Best-by-``monitor`` checkpoint (``best-step=<n>.ckpt``, kept: 1) and, when ``every_n_steps`` is set,
    ``last.ckpt`` rewritten every ``every_n_steps`` optimizer steps (the file to ``resume`` from)."""
    callbacks = []
    if monitor:
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, filename="best-{step}", monitor=monitor, mode=mode,
                                         save_top_k=1, save_last=False, auto_insert_metric_name=True,
                                         save_on_train_epoch_end=False))  # only where validation ran
    if every_n_steps:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ConfigError(f"trainer.checkpoint_every_n_steps={every_n_steps!r} must be a positive integer or null")
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, every_n_train_steps=every_n_steps, save_top_k=0,
                                         save_last=True, enable_version_counter=False))
    return callbacks


def progress_bar(kind: str) -> Callback | None:
    """``rich`` | ``tqdm`` | ``none``."""
    if kind == "rich":
        return RichProgressBar()
    if kind == "tqdm":
        return TQDMProgressBar()
    if kind in ("none", None, False):
        return None
    raise ConfigError(f"trainer.progress_bar={kind!r} is not one of ['rich', 'tqdm', 'none']")


def _strategy(hardware: Any) -> Any:
    strategy = hardware.strategy
    if isinstance(strategy, Mapping) and "_target_" in strategy:
        return instantiate(strategy)
    return strategy


def build_trainer(cfg: Any, callbacks: list[Callback], loggers: list[Any], has_validation: bool) -> pl.Trainer:
    """A ``pl.Trainer`` from ``cfg.trainer`` (loop, optimisation flags) and ``cfg.hardware``.

    The DataModules shard data across ranks themselves (resumable samplers), so Lightning's distributed
    sampler injection is off.
    """
    t, hw = cfg.trainer, cfg.hardware
    bar = progress_bar(t.progress_bar)
    if loggers:
        callbacks = [*callbacks, LearningRateMonitor(logging_interval="step")]
    if bar is not None:
        callbacks = [*callbacks, bar]
    max_steps, max_epochs = t.max_steps, t.max_epochs
    if (max_steps is None or max_steps < 0) and (max_epochs is None or max_epochs < 0):
        raise ConfigError("set trainer.max_epochs or trainer.max_steps: the run would never end")
    return pl.Trainer(
        accelerator=hw.accelerator,
        devices=hw.devices,
        num_nodes=hw.num_nodes,
        strategy=_strategy(hw),
        precision=hw.precision,
        max_epochs=max_epochs,
        max_steps=-1 if max_steps is None else max_steps,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val or None,
        val_check_interval=t.val_check_interval,
        limit_val_batches=t.limit_val_batches if has_validation else 0,
        num_sanity_val_steps=t.num_sanity_val_steps if has_validation else 0,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks,
        logger=loggers if loggers else False,
        enable_progress_bar=bar is not None,
        enable_model_summary=t.model_summary,
        default_root_dir=cfg.output_dir,
        use_distributed_sampler=False,
    )


def best_score(callbacks: list[Callback]) -> float:
    """The best monitored value of the first monitoring ModelCheckpoint (NaN when none was recorded)."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_score is not None:
            return float(callback.best_model_score)
    return math.nan


def best_checkpoint_path(callbacks: list[Callback]) -> str | None:
    """Path of the best checkpoint of the first monitoring ModelCheckpoint, if any was saved."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return None


def resume_checkpoint_path(cfg: Any) -> str | None:
    """The checkpoint ``cfg.resume`` names (None when unset), checked to be a Lightning checkpoint file."""
    resume = cfg.resume
    if not resume:
        return None
    if Path(resume).is_dir():
        raise ConfigError(f"resume={resume!r} is a DeepSpeed checkpoint directory; resuming hardware=deepspeed_* runs "
                          "is not supported yet: rerun with hardware=cpu|gpu|ddp, or start the DeepSpeed run afresh")
    if not Path(resume).is_file():
        raise ConfigError(f"resume={resume!r} is not a file: pass a Lightning checkpoint, e.g. "
                          "<previous run dir>/checkpoints/last.ckpt")
    return str(resume)


def policy_source(trainer_cfg: Any) -> str:
    """``trainer.policy_from``: which weights a recipe saves as its policy (``last`` or ``best``)."""
    policy_from = trainer_cfg.policy_from
    if policy_from not in ("last", "best"):
        raise ConfigError(f"trainer.policy_from={policy_from!r} is not one of ['last', 'best']")
    return policy_from


def load_trainable_weights(module: Any, checkpoint_path: str) -> None:
    """Put the (trainable) weights of a checkpoint written by a ClarifyLab recipe into ``module``."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)["state_dict"]
    _, unexpected = module.load_state_dict(state, strict=False)
    if unexpected:
        raise ConfigError(f"{checkpoint_path} holds weights this model lacks: {unexpected[:3]}")


@dataclass(frozen=True)
class FitOutcome:
    """What :func:`fit_and_select` leaves: the monitored metric (``monitor``) and where its best weights were.

    Attributes:
        best: the best ``monitor`` value over the monitoring checkpoint and the final validation (NaN without
            validation); best = min for ``mode="min"``, max for ``mode="max"``.
        last: ``monitor`` after the final validation (NaN without validation).
        train_loss: the last logged ``train/loss`` (NaN if none was logged).
        best_path: the best checkpoint file, if one was saved.
        metrics: Lightning's ``callback_metrics`` after the final validation.
    """

    best: float
    last: float
    train_loss: float
    best_path: str | None
    metrics: Mapping[str, Any]

    def last_value(self, name: str) -> float:
        """The last logged value of ``name`` (NaN when it was never logged)."""
        return float(self.metrics[name]) if name in self.metrics else math.nan


def fit_and_select(trainer: pl.Trainer, module: Any, datamodule: Any, callbacks: list[Callback], *,
                   resume: str | None, has_validation: bool, monitor: str, mode: str, policy_from: str,
                   ignore_warnings: tuple[str, ...] = ()) -> FitOutcome:
    """Fit (resuming from ``resume``), validate once more if ``max_steps`` stopped between validations, and put
    the best checkpoint's weights into ``module`` when ``policy_from == "best"`` and they beat the final ones.

    ``module`` must expose ``last_validated_step`` (the SFT and preference modules do); ``ignore_warnings`` are
    message regexes silenced during ``fit`` (besides Lightning's mid-epoch resume warning).
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r} is not 'min' or 'max'")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NOT_RESUMABLE_WARNING)
        for message in ignore_warnings:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    train_loss = float(trainer.callback_metrics.get("train/loss", math.nan))  # a dict of logged tensors
    if has_validation and module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)  # max_steps stopped between validations
    metrics = trainer.callback_metrics
    last = float(metrics[monitor]) if monitor in metrics else math.nan
    checkpointed = best_score(callbacks)
    better = min if mode == "min" else max
    scores = [score for score in (checkpointed, last) if not math.isnan(score)]
    best_path = best_checkpoint_path(callbacks)
    beats_last = checkpointed < last if mode == "min" else checkpointed > last
    if policy_from == "best" and best_path and beats_last:
        load_trainable_weights(module, best_path)
    return FitOutcome(best=better(scores) if scores else math.nan, last=last, train_loss=train_loss,
                      best_path=best_path, metrics=metrics)


def print_run_summary(tag: str, outputs: Mapping[str, Any], loggers: list[Any], result: Mapping[str, float]) -> None:
    """Print ``[tag] <what> -> <where>`` for each output (and each logger's folder), then the result metrics."""
    for what, where in outputs.items():
        print(f"[{tag}] {what:<11} -> {where}")
    for logger in loggers:
        print(f"[{tag}] {type(logger).__name__:<11} -> {getattr(logger, 'log_dir', None) or logger.save_dir}")
    print(f"[{tag}] " + "  ".join(f"{key}={value:.4g}" for key, value in result.items()))
