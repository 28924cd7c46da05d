"""DPO recipe: fixed preference pairs -> DPO (ipo/hinge; + alpha * NLL = IRPO's loss) -> policy.

``run_dpo(cfg)`` seeds; builds the policy from ``trainer.init_policy`` (a saved policy, e.g. an SFT
run's ``policy/``: loaded with its adapter merged, then given a NEW LoRA from ``cfg.student.lora``,
so disabling the adapters gives back exactly the initial policy as the reference) or else from the
base ``cfg.student``; reads ``trainer.pairs_path`` (and ``trainer.val_pairs_path``) as JSONL of
:class:`PreferencePair`; fits :class:`PreferenceModule` with the SFT recipe's checkpoints (best by
``val/reward_margin``, mode max; ``last.ckpt`` every ``trainer.checkpoint_every_n_steps``), loggers and
exact resume from ``cfg.resume``; and saves the policy to ``<output_dir>/policy/``.

Saved policy: without ``init_policy`` a LoRA run saves its adapter (the base is rebuilt from the
student spec); with ``init_policy`` the new adapter is merged into the initial policy and the
merged weights are saved (``weights: full``), so the directory is self-contained.

Config keys read (see conf/trainer/dpo.yaml): ``seed``, ``output_dir``, ``resume``, ``paths.cache_dir``,
``student``, ``trainer.*``, ``hardware.*``, ``logger.*``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)

OBJECTIVE = "val/reward_margin"
# Lightning warns about submodules in eval mode at fit start; the frozen reference copy is meant to be.
_EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


def load_initial_policy(cfg: Any) -> tuple[Any, Any, Any, bool]:
    """The trainable policy, its tokenizer, the spec to record with it, and whether it started from
    ``trainer.init_policy``.

    From ``init_policy``: ``load_policy(merge=True)`` then ``prepare_for_training`` with the student's
    LoRA / gradient-checkpointing settings (the student's *source* is not used: the init policy records
    its own base). Otherwise the base student, as in SFT.
    """
    from hydra.utils import instantiate

    from clarifylab.models import load_model_and_tokenizer, load_policy, prepare_for_training
    from clarifylab.models.loading import count_parameters

    spec = instantiate(cfg.student, _convert_="all")
    init_policy = cfg.trainer.get("init_policy")
    if init_policy:
        if not Path(init_policy).is_dir():
            raise ConfigError(f"trainer.init_policy={init_policy!r} is not a directory: pass the `policy` folder "
                              "of an earlier train.py run (e.g. <sft run dir>/policy) or null")
        model, tokenizer, init_spec = load_policy(init_policy, cfg.paths.cache_dir, merge=True)
        if (init_spec.source, init_spec.name_or_path, init_spec.seed) != (spec.source, spec.name_or_path, spec.seed):
            log.warning("trainer.init_policy was trained from %s (%s), not from the configured student %s (%s); "
                        "training the init policy (the student config only sets LoRA options)",
                        init_spec.source, init_spec.name_or_path, spec.source, spec.name_or_path)
        spec = type(spec)(**{**init_spec.to_dict(), "lora": spec.lora,
                             "gradient_checkpointing": spec.gradient_checkpointing})
    else:
        model, tokenizer = load_model_and_tokenizer(spec, cfg.paths.cache_dir)
    model = prepare_for_training(model, spec)
    trainable, total = count_parameters(model)
    log.info("policy %s: %d / %d parameters trainable (%.2f%%)", init_policy or spec.source, trainable, total,
             100 * trainable / max(total, 1))
    return model, tokenizer, spec, bool(init_policy)


def _read_pairs(cfg: Any) -> tuple[list[Any], list[Any]]:
    from clarifylab.training.preference_data import read_pairs

    t = cfg.trainer
    train = read_pairs(t.pairs_path)
    max_pairs = t.get("max_train_pairs")
    if max_pairs:
        train = train[:max_pairs]
    val = read_pairs(t.val_pairs_path) if t.get("val_pairs_path") else []
    return train, val


def run_dpo(cfg: Any, extra_callbacks: list[Any] | None = None,
            replacer_factory: Callable[[Any], Any] | None = None) -> dict[str, float]:
    """Train a policy on preference pairs; return the run's metrics.

    Args:
        cfg: the composed train config (``trainer=dpo``).
        extra_callbacks: Lightning callbacks added to the trainer's (tests, notebooks).
        replacer_factory: ``factory(tokenizer) -> PairReplacer``; the replacer is plugged into the module's
            on-policy hook (ACT Alg. 2). ``None`` = fixed pairs (DPO).

    Returns:
        ``{"val/reward_margin": best validation reward margin (NaN without validation),
        "val/reward_margin_last", "val/reward_accuracy_last", "val/loss_last": last validation values,
        "train/loss": last logged training loss, "train/steps": optimizer steps,
        "train/tokens_seen": scored tokens (both sides)}``.
    """
    import pytorch_lightning as pl

    from clarifylab.models import save_policy
    from clarifylab.training.lightning_setup import (
        best_checkpoint_path,
        best_score,
        build_loggers,
        NOT_RESUMABLE_WARNING,
        build_trainer,
        checkpoint_callbacks,
        config_as_dict,
        load_trainable_weights,
        policy_source,
        resume_checkpoint_path,
    )
    from clarifylab.training.preference_data import pad_token_id_of
    from clarifylab.training.preference_datamodule import PreferenceDataModule
    from clarifylab.training.preference_module import PreferenceModule, is_peft_model

    t = cfg.trainer
    output_dir = Path(cfg.output_dir)
    resume = resume_checkpoint_path(cfg)
    policy_from = policy_source(t, default="best")
    pl.seed_everything(cfg.seed, workers=True)

    model, tokenizer, spec, from_init_policy = load_initial_policy(cfg)
    train_pairs, val_pairs = _read_pairs(cfg)
    datamodule = PreferenceDataModule(
        train_pairs, val_pairs, tokenizer, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        max_length=t.max_length, seed=cfg.seed, num_workers=t.get("num_workers", 0),
        truncation=t.get("truncation", "drop"), end_of_turn=t.get("end_of_turn"))
    module = PreferenceModule(
        model, lr=t.lr, beta=t.beta, loss_type=t.get("loss_type", "sigmoid"),
        label_smoothing=t.get("label_smoothing", 0.0), alpha=t.get("alpha", 0.0), reference=t.get("reference", "auto"),
        precompute_reference=bool(t.get("precompute_reference", False)), pad_token_id=pad_token_id_of(tokenizer),
        weight_decay=t.get("weight_decay", 0.0), warmup_ratio=t.get("warmup_ratio", 0.0),
        lr_schedule=t.get("lr_schedule", "constant"))
    if replacer_factory is not None:
        module.pair_replacer = replacer_factory(tokenizer)

    has_validation = bool(val_pairs) and t.get("limit_val_batches", 1.0) != 0
    checkpoint_dir = output_dir / "checkpoints"
    callbacks: list[Any] = checkpoint_callbacks(checkpoint_dir, t.get("checkpoint_every_n_steps"),
                                                monitor=OBJECTIVE if has_validation else None, mode="max")
    callbacks += list(extra_callbacks or [])
    loggers = build_loggers(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams(config_as_dict(cfg))
    trainer = build_trainer(cfg, callbacks, loggers, has_validation)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NOT_RESUMABLE_WARNING)
        warnings.filterwarnings("ignore", message=_EVAL_MODE_WARNING)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    last_train_loss = float(trainer.callback_metrics.get("train/loss", math.nan))
    if has_validation and module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)  # max_steps stopped between validations

    metrics = trainer.callback_metrics

    def last(name: str) -> float:
        return float(metrics[name]) if name in metrics else math.nan

    final_margin = last(OBJECTIVE)
    scores = [score for score in (best_score(callbacks), final_margin) if not math.isnan(score)]
    best_margin = max(scores) if scores else math.nan
    best_path = best_checkpoint_path(callbacks)
    if policy_from == "best" and best_path and best_score(callbacks) > final_margin:
        load_trainable_weights(module, best_path)
    policy_dir = output_dir / "policy"
    if trainer.is_global_zero:
        policy = module.model
        if from_init_policy and is_peft_model(policy):
            policy = policy.merge_and_unload()  # self-contained: init policy + this run's adapter
        save_policy(policy, tokenizer, spec, policy_dir)

    result = {
        OBJECTIVE: best_margin,
        f"{OBJECTIVE}_last": final_margin,
        "val/reward_accuracy_last": last("val/reward_accuracy"),
        "val/loss_last": last("val/loss"),
        "train/loss": last_train_loss,
        "train/steps": float(trainer.global_step),
        "train/tokens_seen": float(module.tokens_seen),
    }
    if trainer.is_global_zero:
        name = t.get("name", "dpo")
        print(f"[{name}] policy      -> {policy_dir}")
        print(f"[{name}] checkpoints -> {checkpoint_dir} (best: {best_path or 'none'})")
        for logger in loggers:
            print(f"[{name}] {type(logger).__name__:<11} -> {getattr(logger, 'log_dir', None) or logger.save_dir}")
        print(f"[{name}] " + "  ".join(f"{key}={value:.4g}" for key, value in result.items()))
    return result
