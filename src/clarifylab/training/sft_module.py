"""The SFT LightningModule: an HF causal LM (peft-wrapped or not) trained on assistant tokens only.

Checkpoints hold only what the run cannot rebuild: the *trainable* parameters (the LoRA adapters;
every weight under full fine-tuning), optimizer, scheduler, loop and data position, and the RNG
states. The frozen base model is recreated from the model spec when resuming, which is why
``strict_loading`` is off — :meth:`SFTModule.on_load_checkpoint` checks instead that every trainable
parameter is in the checkpoint.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from clarifylab.errors import ConfigError
from clarifylab.training.losses import masked_token_nll
from clarifylab.training.optim import build_optimizer_and_scheduler
from clarifylab.training.rng_state import collect_rng_states, restore_rng_states

RNG_KEY = "clarifylab_rng_states"


def trainable_state_keys(module: torch.nn.Module) -> set[str]:
    """``state_dict`` keys of the parameters that require grad."""
    return {name for name, parameter in module.named_parameters() if parameter.requires_grad}


class SFTModule(pl.LightningModule):
    """Supervised fine-tuning with the token-mean NLL of labelled tokens (:func:`masked_token_nll`).

    Args:
        model: a causal LM returning ``.logits`` of shape ``(B, T, V)``; frozen parameters stay frozen.
        lr, weight_decay, warmup_ratio, lr_schedule: see :func:`build_optimizer_and_scheduler`.

    Logged: ``train/loss`` (per step), ``train/tokens`` (labelled tokens per step),
    ``train/tokens_seen`` (running total), ``val/loss`` (token-weighted mean over the validation set).
    """

    strict_loading = False  # checkpoints omit the frozen base; see on_load_checkpoint

    def __init__(self, model: torch.nn.Module, lr: float, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 lr_schedule: str = "cosine") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.model.train()  # HF models load in eval mode; Lightning keeps whatever mode modules are in
        self.tokens_seen = 0
        self.last_validated_step: int | None = None  # global step of the latest (non-sanity) validation
        self._rng_states_to_restore: dict[str, Any] | None = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` for int64 ``input_ids`` / ``attention_mask`` of shape ``(B, T)``."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["input_ids"], batch["attention_mask"])
        return masked_token_nll(logits, batch["labels"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n_tokens = self._loss(batch)
        self.tokens_seen += int(n_tokens)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        self.log("train/tokens", n_tokens.float(), on_step=True, on_epoch=False, batch_size=size)
        self.log("train/tokens_seen", float(self.tokens_seen), on_step=True, on_epoch=False, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n_tokens = self._loss(batch)
        # Weighting each batch's mean by its token count makes the epoch value the token mean of the set.
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=max(int(n_tokens), 1))
        return loss

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.last_validated_step = self.global_step

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return build_optimizer_and_scheduler(self.named_parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                             warmup_ratio=hp.warmup_ratio, lr_schedule=hp.lr_schedule,
                                             total_steps=self.trainer.estimated_stepping_batches)

    # ---- checkpoints: trainable weights only, plus RNG states ----

    def _stores_everything(self) -> bool:
        return all(parameter.requires_grad for parameter in self.parameters())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self._stores_everything():
            keep = trainable_state_keys(self)
            checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items() if key in keep}
        checkpoint["clarifylab_tokens_seen"] = self.tokens_seen
        checkpoint[RNG_KEY] = collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        missing = sorted(trainable_state_keys(self) - set(checkpoint.get("state_dict", {})))
        if missing:
            raise ConfigError(
                f"the checkpoint lacks {len(missing)} trainable parameter(s) of this model (e.g. {missing[:3]}): "
                "it was saved with a different student/LoRA configuration; resume with the same `student` config")
        self.tokens_seen = int(checkpoint.get("clarifylab_tokens_seen", 0))
        self._rng_states_to_restore = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        # Restored here, after the sanity check and dataloader setup, right before the first resumed step.
        if self._rng_states_to_restore is not None:
            restore_rng_states(self._rng_states_to_restore)
            self._rng_states_to_restore = None
