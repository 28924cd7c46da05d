"""Supervised fine-tuning recipe: Examples -> gold conversations -> assistant-only NLL -> policy.

``run_sft(cfg)`` seeds, builds the student (+LoRA), the DataModule and the module, fits with
checkpoints (best by ``val/loss``; ``last.ckpt`` every ``trainer.checkpoint_every_n_steps`` steps),
sample-generation tables and the configured loggers, resumes from ``cfg.resume`` when set, and
saves the trained policy to ``<output_dir>/policy/``.

Config keys read (see conf/trainer/sft.yaml): ``seed``, ``output_dir``, ``resume``, ``paths.cache_dir``,
``student`` (a ModelSpec with ``_target_``), ``dataset.{name, instruction, train_split, val_split,
max_train_examples, max_val_examples}``, ``trainer.*``, ``hardware.*``, ``logger.*``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate

from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Example
from clarifylab.models import load_model_and_tokenizer, prepare_for_training, save_policy
from clarifylab.models.loading import count_parameters
from clarifylab.training.lightning_setup import (
    build_loggers,
    build_trainer,
    checkpoint_callbacks,
    config_as_dict,
    fit_and_select,
    policy_source,
    print_run_summary,
    resume_checkpoint_path,
)
from clarifylab.training.sample_generations import SampleGenerationsCallback
from clarifylab.training.sft_data import SFTDataModule
from clarifylab.training.sft_module import SFTModule

log = logging.getLogger(__name__)


def pick_sample_examples(examples: list[Example], n: int) -> list[Example]:
    """Up to ``n`` examples alternating between gold actions (clarify, answer, clarify, ...), in data
    order within each action, so the sample table shows both behaviours."""
    by_action: dict[str, list[Example]] = {}
    for example in examples:
        by_action.setdefault(example.action.value, []).append(example)
    queues = [by_action[action] for action in sorted(by_action)]
    picked: list[Example] = []
    position = 0
    while len(picked) < n and any(position < len(queue) for queue in queues):
        picked += [queue[position] for queue in queues if position < len(queue)][: n - len(picked)]
        position += 1
    return picked


def _load_examples(cfg: Any) -> tuple[list[Example], list[Example]]:
    dataset = cfg.dataset
    train = load_dataset_split(dataset, dataset.train_split, cfg.paths, max_examples=dataset.max_train_examples)
    val = (load_dataset_split(dataset, dataset.val_split, cfg.paths, max_examples=dataset.max_val_examples)
           if dataset.val_split else [])
    return train, val


def run_sft(cfg: Any, extra_callbacks: list[Any] | None = None) -> dict[str, float]:
    """Fine-tune ``cfg.student`` on the gold conversations of ``cfg.dataset``; return the run's metrics.

    ``extra_callbacks`` (Lightning callbacks) are added to the trainer's (tests, notebooks).

    Returns:
        ``{"val/loss": best validation loss (NaN without validation), "val/loss_last": last one,
        "train/loss": last logged training loss, "train/steps": optimizer steps,
        "train/tokens_seen": labelled tokens trained on}``.
    """
    t = cfg.trainer
    output_dir = Path(cfg.output_dir)
    resume = resume_checkpoint_path(cfg)
    policy_from = policy_source(t)
    pl.seed_everything(cfg.seed, workers=True)

    spec = instantiate(cfg.student, _convert_="all")
    model, tokenizer = load_model_and_tokenizer(spec, cfg.paths.cache_dir)
    model = prepare_for_training(model, spec)
    trainable, total = count_parameters(model)
    log.info("student %s: %d / %d parameters trainable (%.2f%%)", spec.source, trainable, total,
             100 * trainable / max(total, 1))

    train_examples, val_examples = _load_examples(cfg)
    instruction = cfg.dataset.instruction
    datamodule = SFTDataModule(
        train_examples, val_examples, tokenizer, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        max_length=t.max_length, loss_on=t.loss_on, instruction=instruction, seed=cfg.seed,
        num_workers=t.num_workers, truncation=t.truncation, end_of_turn=t.end_of_turn)
    module = SFTModule(model, lr=t.lr, weight_decay=t.weight_decay, warmup_ratio=t.warmup_ratio,
                       lr_schedule=t.lr_schedule)

    has_validation = bool(val_examples) and t.limit_val_batches != 0
    checkpoint_dir = output_dir / "checkpoints"
    callbacks: list[Any] = checkpoint_callbacks(checkpoint_dir, t.checkpoint_every_n_steps,
                                                monitor="val/loss" if has_validation else None)
    n_samples = t.sample_generations
    if has_validation and n_samples > 0:
        callbacks.append(SampleGenerationsCallback(
            pick_sample_examples(val_examples, n_samples), tokenizer, output_dir / "samples", instruction=instruction,
            max_new_tokens=t.sample_max_new_tokens, batch_size=t.eval_batch_size))
    callbacks += list(extra_callbacks or [])

    loggers = build_loggers(cfg.logger)
    for logger in loggers:
        logger.log_hyperparams(config_as_dict(cfg))
    trainer = build_trainer(cfg, callbacks, loggers, has_validation)

    outcome = fit_and_select(trainer, module, datamodule, callbacks, resume=resume, has_validation=has_validation,
                             monitor="val/loss", mode="min", policy_from=policy_from)
    policy_dir = output_dir / "policy"
    if trainer.is_global_zero:
        save_policy(module.model, tokenizer, spec, policy_dir)

    result = {
        "val/loss": outcome.best,
        "val/loss_last": outcome.last,
        "train/loss": outcome.train_loss,
        "train/steps": float(trainer.global_step),
        "train/tokens_seen": float(module.tokens_seen),
    }
    if trainer.is_global_zero:
        outputs = {"policy": policy_dir, "checkpoints": f"{checkpoint_dir} (best: {outcome.best_path or 'none'})"}
        if n_samples and has_validation:
            outputs["samples"] = output_dir / "samples"
        print_run_summary("sft", outputs, loggers, result)
    return result
