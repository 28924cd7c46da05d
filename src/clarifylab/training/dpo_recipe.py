"""DPO recipe: fixed preference pairs -> DPO (ipo/hinge; + alpha * NLL = IRPO's loss) -> policy.

``run_dpo(cfg)`` seeds; builds the policy from ``trainer.init_policy`` (a saved policy, e.g. an SFT
run's ``policy/``: its LoRA adapter(s) loaded unmerged and frozen, then a NEW LoRA stage from
``cfg.student.lora`` stacked on top (``models.adapter_stack``), so the stack without its top stage is
exactly the initial policy, the reference) or else from the
base ``cfg.student``; reads ``trainer.pairs_path`` (and ``trainer.val_pairs_path``) as JSONL of
:class:`PreferencePair`; fits :class:`PreferenceModule` with the SFT recipe's checkpoints (best by
``val/reward_margin``, mode max; ``last.ckpt`` every ``trainer.checkpoint_every_n_steps``), loggers and
exact resume from ``cfg.resume``; and saves the policy to ``<output_dir>/policy/``.

Saved policy: without ``init_policy`` a LoRA run saves its adapter (the base is rebuilt from the
student spec); with a LoRA ``init_policy`` every stage is saved unmerged (``weights: lora_stack``), so the
directory is self-contained and nothing is rounded away by a bf16 merge. (A full-weights init policy, or a
full fine-tuning student, still starts from merged weights.)

Config keys read (see conf/trainer/dpo.yaml): ``seed``, ``output_dir``, ``resume``, ``paths.cache_dir``,
``student``, ``trainer.*``, ``hardware.*``, ``logger.*``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate

from clarifylab.errors import ConfigError
from clarifylab.models import (
    load_model_and_tokenizer,
    load_policy,
    load_policy_stack,
    prepare_for_training,
    save_policy,
)
from clarifylab.models.adapter_stack import is_adapter_stack, push_adapter
from clarifylab.models.loading import count_parameters, enable_gradient_checkpointing
from clarifylab.models.policy_io import policy_stages
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
from clarifylab.training.preference_data import pad_token_id_of, read_pairs
from clarifylab.training.preference_datamodule import PreferenceDataModule
from clarifylab.training.preference_module import PreferenceModule, is_peft_model

log = logging.getLogger(__name__)

OBJECTIVE = "val/reward_margin"
# Lightning warns about submodules in eval mode at fit start; the frozen reference copy is meant to be.
_EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


def load_initial_policy(cfg: Any) -> tuple[Any, Any, Any, bool]:
    """The trainable policy, its tokenizer, the spec to record with it, and whether it started from
    ``trainer.init_policy``.

    From a LoRA ``init_policy`` with a LoRA student: its stage(s) frozen and unmerged
    (:func:`load_policy_stack`) plus a new trainable stage (:func:`push_adapter`). From a full-weights
    init policy, or for a full fine-tuning student: ``load_policy(merge=True)`` then ``prepare_for_training``.
    The student's *source* is not used: the init policy records its own base. Otherwise the base
    student, as in SFT.
    """
    spec = instantiate(cfg.student, _convert_="all")
    init_policy = cfg.trainer.init_policy
    if init_policy:
        if not Path(init_policy).is_dir():
            raise ConfigError(f"trainer.init_policy={init_policy!r} is not a directory: pass the `policy` folder "
                              "of an earlier train.py run (e.g. <sft run dir>/policy) or null")
        stack = spec.uses_lora and bool(policy_stages(init_policy))
        if stack:
            model, tokenizer, init_spec = load_policy_stack(init_policy, cfg.paths.cache_dir)
        else:
            model, tokenizer, init_spec = load_policy(init_policy, cfg.paths.cache_dir, merge=True)
        if (init_spec.source, init_spec.name_or_path, init_spec.seed) != (spec.source, spec.name_or_path, spec.seed):
            log.warning("trainer.init_policy was trained from %s (%s), not from the configured student %s (%s); "
                        "training the init policy (the student config only sets LoRA options)",
                        init_spec.source, init_spec.name_or_path, spec.source, spec.name_or_path)
        spec = type(spec)(**{**init_spec.to_dict(), "lora": spec.lora,
                             "gradient_checkpointing": spec.gradient_checkpointing})
        if stack:
            if spec.gradient_checkpointing:
                enable_gradient_checkpointing(model.get_base_model())
            model = push_adapter(model, spec.lora)
        else:
            model = prepare_for_training(model, spec)
    else:
        model, tokenizer = load_model_and_tokenizer(spec, cfg.paths.cache_dir)
        model = prepare_for_training(model, spec)
    trainable, total = count_parameters(model)
    log.info("policy %s: %d / %d parameters trainable (%.2f%%)", init_policy or spec.source, trainable, total,
             100 * trainable / max(total, 1))
    return model, tokenizer, spec, bool(init_policy)


def _read_pairs(cfg: Any) -> tuple[list[Any], list[Any]]:
    t = cfg.trainer
    train = read_pairs(t.pairs_path)
    if not train:
        raise ConfigError(f"{t.pairs_path} holds no preference pairs (trainer.pairs_path): rebuild it (e.g. "
                          "`python generate.py task=act_pairs`) or point trainer.pairs_path at a non-empty file")
    max_pairs = t.max_train_pairs
    if max_pairs:
        train = train[:max_pairs]
    val = read_pairs(t.val_pairs_path) if t.val_pairs_path else []
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
    t = cfg.trainer
    output_dir = Path(cfg.output_dir)
    resume = resume_checkpoint_path(cfg)
    policy_from = policy_source(t)
    pl.seed_everything(cfg.seed, workers=True)

    train_pairs, val_pairs = _read_pairs(cfg)  # bad input fails before the model loads
    model, tokenizer, spec, from_init_policy = load_initial_policy(cfg)
    datamodule = PreferenceDataModule(
        train_pairs, val_pairs, tokenizer, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        max_length=t.max_length, seed=cfg.seed, num_workers=t.num_workers,
        truncation=t.truncation, end_of_turn=t.end_of_turn)
    module = PreferenceModule(
        model, lr=t.lr, beta=t.beta, loss_type=t.loss_type,
        label_smoothing=t.label_smoothing, alpha=t.alpha, reference=t.reference,
        precompute_reference=t.precompute_reference, forward=t.forward, pad_token_id=pad_token_id_of(tokenizer),
        weight_decay=t.weight_decay, warmup_ratio=t.warmup_ratio,
        lr_schedule=t.lr_schedule)
    if replacer_factory is not None:
        module.pair_replacer = replacer_factory(tokenizer)

    has_validation = bool(val_pairs) and t.limit_val_batches != 0
    checkpoint_dir = output_dir / "checkpoints"
    callbacks: list[Any] = checkpoint_callbacks(checkpoint_dir, t.checkpoint_every_n_steps,
                                                monitor=OBJECTIVE if has_validation else None, mode="max")
    callbacks += list(extra_callbacks or [])
    loggers = build_loggers(cfg.logger)
    for logger in loggers:
        logger.log_hyperparams(config_as_dict(cfg))
    trainer = build_trainer(cfg, callbacks, loggers, has_validation)

    outcome = fit_and_select(trainer, module, datamodule, callbacks, resume=resume, has_validation=has_validation,
                             monitor=OBJECTIVE, mode="max", policy_from=policy_from,
                             ignore_warnings=(_EVAL_MODE_WARNING,))
    policy_dir = output_dir / "policy"
    if trainer.is_global_zero:
        policy = module.model  # a stack (the init policy's stages + this run's) is saved unmerged: lora_stack
        if from_init_policy and is_peft_model(policy) and not is_adapter_stack(policy):
            policy = policy.merge_and_unload()  # a LoRA on a full-weights init policy: self-contained
        save_policy(policy, tokenizer, spec, policy_dir)

    result = {
        OBJECTIVE: outcome.best,
        f"{OBJECTIVE}_last": outcome.last,
        "val/reward_accuracy_last": outcome.last_value("val/reward_accuracy"),
        "val/loss_last": outcome.last_value("val/loss"),
        "train/loss": outcome.train_loss,
        "train/steps": float(trainer.global_step),
        "train/tokens_seen": float(module.tokens_seen),
    }
    if trainer.is_global_zero:
        print_run_summary(t.name, {"policy": policy_dir,
                                   "checkpoints": f"{checkpoint_dir} (best: {outcome.best_path or 'none'})"},
                          loggers, result)
    return result
