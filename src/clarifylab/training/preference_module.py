"""The preference-optimisation LightningModule shared by dpo, irpo and act (SPEC §5).

Per batch of ``B`` pairs: the policy scores chosen and rejected in one forward — packed, each prompt
computed once under a shared-prefix mask (``training.packed_pairs``), or the plain concatenation of both
sides (``training.logprobs``) for models that cannot take the mask; the reference scores them too — for a peft LoRA policy the *same* model
with its adapters disabled (no second copy in memory; for a stack of LoRA stages, ``models.adapter_stack``,
with only its trainable top stage switched off), for full fine-tuning a frozen deep copy taken
at construction, for fixed pairs optionally precomputed once per pair id before training; then

    loss = mean_b [ preference_loss_b + alpha * nll_on_chosen_b ]        (training.losses)

with ``alpha = 0`` for DPO and ``alpha > 0`` for IRPO. The per-pair mean makes accumulation over equal
micro-batches equivalent to one large batch.

On-policy hook (ACT Alg. 2): :meth:`PreferenceModule.replace_pairs` runs first in every
``training_step``; it returns the batch unchanged unless a :class:`PairReplacer` is plugged in
(``module.pair_replacer = replacer``) or a subclass overrides it. A replaced side must come back
re-tokenized (``tokenize_pair`` + ``PreferenceCollator``) with its reference log-probs cleared
(a freshly collated batch has none), so the reference is recomputed for it.

Checkpoints (inherited from :class:`SFTModule`): trainable parameters only, optimizer/scheduler,
loop and data position, RNG states; plus the plug-in replacer's ``state_dict()`` when it has one (ACT's call
counter and totals), so a resumed on-policy run samples exactly as an uninterrupted one. The reference is
never saved: LoRA's is the frozen base, the copy is rebuilt from the initial policy, precomputed values are
recomputed at fit start.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from peft import PeftModel

from clarifylab.errors import ConfigError
from clarifylab.models.adapter_stack import adapter_names, only_adapters
from clarifylab.training.logprobs import Batch, PairLogps, concatenated_forward
from clarifylab.training.packed_pairs import packed_forward, resolve_forward_mode
from clarifylab.training.prefix_cache import prefix_cache_forward
from clarifylab.training.losses import nll_on_chosen, preference_loss, preference_metrics
from clarifylab.training.preference_data import PreferenceBatch
from clarifylab.training.sft_module import SFTModule

log = logging.getLogger(__name__)

REFERENCE_MODES = ("auto", "adapter", "copy")
REPLACER_KEY = "clarifylab_pair_replacer"  # checkpoint entry holding the PairReplacer's state_dict()


class PairReplacer(Protocol):
    """Replaces sides of a batch's pairs at the start of each training step (ACT Alg. 2 lines 2-16).

    Called as ``replacer(module, batch)``; it may generate with ``module.model`` (switching to eval
    mode / no-grad itself) and must return a :class:`PreferenceBatch` whose replaced sides are
    re-tokenized and whose reference log-probs are ``None`` wherever a side changed.
    """

    def __call__(self, module: PreferenceModule, batch: PreferenceBatch) -> PreferenceBatch: ...

    # Optional, for exact resume: ``state_dict() -> dict`` and ``load_state_dict(state)``; the module saves the
    # former into its Lightning checkpoints and restores it on resume.


def is_peft_model(model: Any) -> bool:
    """True for a peft ``PeftModel`` (whose adapters can be disabled)."""
    return isinstance(model, PeftModel)


def resolve_reference_mode(model: Any, reference: str) -> str:
    """``auto`` -> ``adapter`` for a peft model, ``copy`` otherwise; checks an explicit choice."""
    if reference not in REFERENCE_MODES:
        raise ConfigError(f"trainer.reference={reference!r} is not one of {list(REFERENCE_MODES)}")
    if reference == "auto":
        return "adapter" if is_peft_model(model) else "copy"
    if reference == "adapter" and not is_peft_model(model):
        raise ConfigError("trainer.reference=adapter needs a LoRA policy (student.lora.enabled=true); "
                          "use trainer.reference=copy (or auto) for full fine-tuning")
    return reference


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` in eval mode with every parameter frozen (the full-fine-tuning reference)."""
    reference = copy.deepcopy(model)
    reference.requires_grad_(False)
    reference.eval()
    return reference


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``module`` in eval mode (no dropout) and restore every submodule's own mode afterwards."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for child, training in modes:
            child.training = training


class PreferenceModule(SFTModule):
    """DPO-family training on preference pairs (see the module docstring).

    Args:
        model: the policy, a causal LM (peft-wrapped for LoRA); its frozen parameters stay frozen.
        lr, weight_decay, warmup_ratio, lr_schedule: see ``build_optimizer_and_scheduler``.
        beta: KL strength of the preference loss (ACT: 0.01; the official ACT code 0.05).
        loss_type: ``sigmoid`` | ``ipo`` | ``hinge`` (:func:`preference_loss`).
        label_smoothing: conservative-DPO label noise (``sigmoid`` only).
        alpha: weight of the length-normalised NLL of the chosen side (IRPO: 1; DPO: 0).
        reference: ``auto`` | ``adapter`` (LoRA: adapters disabled) | ``copy`` (frozen deep copy).
        precompute_reference: score every training/validation pair under the reference once at fit
            start (fixed pairs only; on-policy replaced sides are always scored live).
        forward: ``auto`` | ``packed`` | ``prefix_cache`` | ``concatenated``: how a batch's pairs are scored
            (policy and reference alike); ``auto`` packs when the model's attention takes the mask, else falls
            back (logged once, at construction); ``prefix_cache`` runs each prompt once through the KV cache.
        pad_token_id: id used when the two sides of a batch need extra padding (masked).

    Logged per training step and per validation epoch (pair-weighted means), under ``train/`` and
    ``val/``: ``loss``, ``reward_margin`` (``val/reward_margin`` selects checkpoints, mode max),
    ``reward_accuracy``, ``rewards_chosen``, ``rewards_rejected``, ``logps_chosen``, ``logps_rejected``,
    ``nll_chosen``; plus ``train/tokens`` and ``train/tokens_seen`` (scored tokens, both sides).
    """

    def __init__(self, model: torch.nn.Module, lr: float, beta: float, loss_type: str = "sigmoid",
                 label_smoothing: float = 0.0, alpha: float = 0.0, reference: str = "auto",
                 precompute_reference: bool = False, forward: str = "auto", pad_token_id: int = 0,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.0, lr_schedule: str = "cosine") -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, lr_schedule=lr_schedule)
        zero = torch.zeros(1)  # validates beta, loss_type and label_smoothing now rather than at the first step
        preference_loss(zero, zero, zero, zero, beta=beta, loss_type=loss_type, label_smoothing=label_smoothing,
                        chosen_lengths=zero, rejected_lengths=zero)
        if not alpha >= 0:
            raise ConfigError(f"trainer.alpha={alpha!r} must be >= 0 (0 = plain DPO)")
        self.reference_mode = resolve_reference_mode(model, reference)
        self.forward_mode = resolve_forward_mode(model, forward)
        # Registered as a submodule so it follows the policy across devices; frozen, so neither the
        # optimizer nor the checkpoints (trainable parameters only) ever see it.
        self.reference_model = frozen_copy(model) if self.reference_mode == "copy" else None
        self.pad_token_id = int(pad_token_id)
        self.pair_replacer: PairReplacer | None = None
        self.reference_table: dict[str, dict[str, tuple[float, float]]] | None = None

    def pair_forward(self, model: torch.nn.Module, chosen: Batch, rejected: Batch) -> PairLogps:
        """Both sides' log-probs under ``model`` (the policy or the reference) in the resolved forward mode."""
        if self.forward_mode == "packed":
            return packed_forward(model, chosen, rejected, self.pad_token_id)
        if self.forward_mode == "prefix_cache":
            return prefix_cache_forward(model, chosen, rejected, self.pad_token_id)
        return concatenated_forward(model, chosen, rejected, self.pad_token_id)

    # ---- reference ----

    @contextmanager
    def reference(self) -> Iterator[torch.nn.Module]:
        """The reference model, in eval mode, for use under ``torch.no_grad()``."""
        if self.reference_model is not None:
            self.reference_model.eval()
            yield self.reference_model
            return
        names = adapter_names(self.model)
        if len(names) > 1:  # a stack: the reference is every stage but the trainable top one
            with eval_mode(self.model), only_adapters(self.model, names[:-1]):
                yield self.model
            return
        with eval_mode(self.model), self.model.disable_adapter():
            yield self.model

    def reference_forward(self, batch: PreferenceBatch) -> PairLogps:
        """Reference log-probs of both sides of ``batch`` (no grad)."""
        with torch.no_grad(), self.reference() as reference:
            return self.pair_forward(reference, batch.chosen, batch.rejected)

    def reference_logps(self, batch: PreferenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ref_chosen, ref_rejected)``, each ``(B,)``: the batch's own values when set, else computed."""
        if batch.ref_chosen_logps is not None and batch.ref_rejected_logps is not None:
            return batch.ref_chosen_logps, batch.ref_rejected_logps
        scored = self.reference_forward(batch)
        return scored.chosen_logps, scored.rejected_logps

    def precompute_reference_table(self, loaders: Mapping[str, Iterable[PreferenceBatch]]
                                   ) -> dict[str, dict[str, tuple[float, float]]]:
        """``{split: {pair id: (ref_chosen_logp, ref_rejected_logp)}}`` over every batch of each loader."""
        table: dict[str, dict[str, tuple[float, float]]] = {}
        start, count = time.monotonic(), 0
        for split, loader in loaders.items():
            values = table.setdefault(split, {})
            for batch in loader:
                scored = self.reference_forward(batch.to(self.device))
                for pair_id, chosen, rejected in zip(batch.ids, scored.chosen_logps.tolist(),
                                                     scored.rejected_logps.tolist()):
                    values[pair_id] = (chosen, rejected)
                count += len(batch)
        elapsed = time.monotonic() - start
        log.info("precomputed reference log-probs of %d pairs in %.1f s (%.1f pairs/s)", count, elapsed,
                 count / max(elapsed, 1e-9))
        return table

    def attach_reference(self, batch: PreferenceBatch, split: str) -> PreferenceBatch:
        """Fill the batch's reference log-probs from the precomputed table (when every id is in it)."""
        values = (self.reference_table or {}).get(split)
        if not values or batch.ref_chosen_logps is not None or any(pair_id not in values for pair_id in batch.ids):
            return batch
        rows = torch.tensor([values[pair_id] for pair_id in batch.ids], dtype=torch.float32, device=self.device)
        batch.ref_chosen_logps, batch.ref_rejected_logps = rows[:, 0], rows[:, 1]
        return batch

    def on_fit_start(self) -> None:
        if self.hparams.precompute_reference and self.reference_table is None:
            datamodule = self.trainer.datamodule
            if datamodule is None or not hasattr(datamodule, "reference_dataloaders"):
                raise ConfigError("trainer.precompute_reference=true needs a PreferenceDataModule")
            self.reference_table = self.precompute_reference_table(datamodule.reference_dataloaders())

    # ---- checkpoints: the replacer's state travels with the module's ----

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """SFTModule's checkpoint plus the plugged-in replacer's ``state_dict()`` (when it has one; ACT: its call
        counter, which fixes the sampling schedule and seeds, and its branch totals)."""
        super().on_save_checkpoint(checkpoint)
        if self.pair_replacer is not None and hasattr(self.pair_replacer, "state_dict"):
            checkpoint[REPLACER_KEY] = self.pair_replacer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.pair_replacer is None or not hasattr(self.pair_replacer, "load_state_dict"):
            return
        if REPLACER_KEY not in checkpoint:
            raise ConfigError("the checkpoint has no on-policy replacer state (saved by a run without one, or by an "
                              "older version): resuming would resample from call 0; start a fresh run instead")
        self.pair_replacer.load_state_dict(checkpoint[REPLACER_KEY])

    # ---- the on-policy hook ----

    def replace_pairs(self, batch: PreferenceBatch) -> PreferenceBatch:
        """Hook run first in every training step: identity, or the plugged-in :class:`PairReplacer`."""
        if self.pair_replacer is None:
            return batch
        return self.pair_replacer(self, batch).to(self.device)

    # ---- loss ----

    def pair_loss(self, batch: PreferenceBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """``(loss, metrics, n_tokens)``: the scalar training loss (mean over the batch's pairs), detached
        metric scalars (see the class docstring) and the int64 number of scored tokens (both sides)."""
        hp = self.hparams
        ref_chosen, ref_rejected = self.reference_logps(batch)
        policy = self.pair_forward(self.model, batch.chosen, batch.rejected)
        losses, chosen_rewards, rejected_rewards = preference_loss(
            policy.chosen_logps, policy.rejected_logps, ref_chosen, ref_rejected, beta=hp.beta,
            loss_type=hp.loss_type, label_smoothing=hp.label_smoothing, chosen_lengths=policy.chosen_tokens,
            rejected_lengths=policy.rejected_tokens)
        nll = nll_on_chosen(policy.chosen_logps, policy.chosen_tokens)
        if hp.alpha:
            losses = losses + hp.alpha * nll
        metrics = preference_metrics(chosen_rewards, rejected_rewards)
        metrics.update(logps_chosen=policy.chosen_logps.detach().mean(),
                       logps_rejected=policy.rejected_logps.detach().mean(), nll_chosen=nll.detach().mean())
        return losses.mean(), metrics, policy.chosen_tokens.sum() + policy.rejected_tokens.sum()

    def training_step(self, batch: PreferenceBatch, batch_idx: int) -> torch.Tensor:
        batch = self.replace_pairs(self.attach_reference(batch, "train"))
        loss, metrics, n_tokens = self.pair_loss(batch)
        self.tokens_seen += int(n_tokens)
        size = len(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        for name, value in metrics.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, prog_bar=name == "reward_margin",
                     batch_size=size)
        self.log("train/tokens", n_tokens.float(), on_step=True, on_epoch=False, batch_size=size)
        self.log("train/tokens_seen", float(self.tokens_seen), on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: PreferenceBatch, batch_idx: int) -> torch.Tensor:
        loss, metrics, _ = self.pair_loss(self.attach_reference(batch, "val"))
        size = len(batch)  # weights each batch mean by its pairs: the epoch value is the mean over all pairs
        self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=size)
        for name, value in metrics.items():
            self.log(f"val/{name}", value, on_step=False, on_epoch=True, prog_bar=name == "reward_margin",
                     sync_dist=True, batch_size=size)
        return loss
