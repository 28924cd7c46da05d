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
import math
import warnings
from pathlib import Path
from typing import Any

from clarifylab.data.schema import Example

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
    from clarifylab.data.registry import load_dataset_split

    dataset = cfg.dataset
    train = load_dataset_split(dataset, dataset.train_split, cfg.paths, max_examples=dataset.get("max_train_examples"))
    val_split = dataset.get("val_split")
    val = (load_dataset_split(dataset, val_split, cfg.paths, max_examples=dataset.get("max_val_examples"))
           if val_split else [])
    return train, val


def run_sft(cfg: Any, extra_callbacks: list[Any] | None = None) -> dict[str, float]:
    """Fine-tune ``cfg.student`` on the gold conversations of ``cfg.dataset``; return the run's metrics.

    ``extra_callbacks`` (Lightning callbacks) are added to the trainer's (tests, notebooks).

    Returns:
        ``{"val/loss": best validation loss (NaN without validation), "val/loss_last": last one,
        "train/loss": last logged training loss, "train/steps": optimizer steps,
        "train/tokens_seen": labelled tokens trained on}``.
    """
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from clarifylab.models import load_model_and_tokenizer, prepare_for_training, save_policy
    from clarifylab.models.loading import count_parameters
    from clarifylab.training.lightning_setup import (
        best_checkpoint_path,
        best_score,
        build_loggers,
        build_trainer,
        checkpoint_callbacks,
        config_as_dict,
        NOT_RESUMABLE_WARNING,
        load_trainable_weights,
        policy_source,
        resume_checkpoint_path,
    )
    from clarifylab.training.sample_generations import SampleGenerationsCallback
    from clarifylab.training.sft_data import SFTDataModule
    from clarifylab.training.sft_module import SFTModule

    t = cfg.trainer
    output_dir = Path(cfg.output_dir)
    resume = resume_checkpoint_path(cfg)
    policy_from = policy_source(t, default="last")
    pl.seed_everything(cfg.seed, workers=True)

    spec = instantiate(cfg.student, _convert_="all")
    model, tokenizer = load_model_and_tokenizer(spec, cfg.paths.cache_dir)
    model = prepare_for_training(model, spec)
    trainable, total = count_parameters(model)
    log.info("student %s: %d / %d parameters trainable (%.2f%%)", spec.source, trainable, total,
             100 * trainable / max(total, 1))

    train_examples, val_examples = _load_examples(cfg)
    instruction = cfg.dataset.get("instruction")
    datamodule = SFTDataModule(
        train_examples, val_examples, tokenizer, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        max_length=t.max_length, loss_on=t.get("loss_on", "all_assistant"), instruction=instruction, seed=cfg.seed,
        num_workers=t.get("num_workers", 0), truncation=t.get("truncation", "drop"), end_of_turn=t.get("end_of_turn"))
    module = SFTModule(model, lr=t.lr, weight_decay=t.get("weight_decay", 0.0),
                       warmup_ratio=t.get("warmup_ratio", 0.0), lr_schedule=t.get("lr_schedule", "cosine"))

    has_validation = bool(val_examples) and t.get("limit_val_batches", 1.0) != 0
    checkpoint_dir = output_dir / "checkpoints"
    callbacks: list[Any] = checkpoint_callbacks(checkpoint_dir, t.get("checkpoint_every_n_steps"),
                                                monitor="val/loss" if has_validation else None)
    n_samples = int(t.get("sample_generations", 0) or 0)
    if has_validation and n_samples > 0:
        callbacks.append(SampleGenerationsCallback(
            pick_sample_examples(val_examples, n_samples), tokenizer, output_dir / "samples", instruction=instruction,
            max_new_tokens=t.get("sample_max_new_tokens", 64), batch_size=t.eval_batch_size))
    callbacks += list(extra_callbacks or [])

    loggers = build_loggers(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams(config_as_dict(cfg))
    trainer = build_trainer(cfg, callbacks, loggers, has_validation)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NOT_RESUMABLE_WARNING)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    last_train_loss = float(trainer.callback_metrics.get("train/loss", math.nan))
    if has_validation and module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)  # max_steps stopped between validations

    metrics = trainer.callback_metrics
    final_val = float(metrics["val/loss"]) if "val/loss" in metrics else math.nan
    scores = [score for score in (best_score(callbacks), final_val) if not math.isnan(score)]
    best_val = min(scores) if scores else math.nan
    best_path = best_checkpoint_path(callbacks)
    if policy_from == "best" and best_path and best_score(callbacks) < final_val:
        load_trainable_weights(module, best_path)
    policy_dir = output_dir / "policy"
    if trainer.is_global_zero:
        save_policy(module.model, tokenizer, spec, policy_dir)

    result = {
        "val/loss": best_val,
        "val/loss_last": final_val,
        "train/loss": last_train_loss,
        "train/steps": float(trainer.global_step),
        "train/tokens_seen": float(module.tokens_seen),
    }
    if trainer.is_global_zero:
        print(f"[sft] policy      -> {policy_dir}")
        print(f"[sft] checkpoints -> {checkpoint_dir} (best: {best_path or 'none'})")
        if n_samples and has_validation:
            print(f"[sft] samples     -> {output_dir / 'samples'}")
        for logger in loggers:
            print(f"[sft] {type(logger).__name__:<11} -> {getattr(logger, 'log_dir', None) or logger.save_dir}")
        print("[sft] " + "  ".join(f"{key}={value:.4g}" for key, value in result.items()))
    return result
