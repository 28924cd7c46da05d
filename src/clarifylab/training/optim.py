"""AdamW over the trainable parameters + a per-optimizer-step learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from transformers import get_scheduler

from clarifylab.errors import ConfigError

LR_SCHEDULES = ("cosine", "linear", "constant")


def parameter_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
                     weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups of the *trainable* parameters: matrices decay, vectors (biases, norm
    weights) do not. Frozen parameters (``requires_grad=False``, e.g. a LoRA base) are left out."""
    decay, no_decay = [], []
    for _, parameter in named_parameters:
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    if not decay and not no_decay:
        raise ConfigError("the model has no trainable parameters: enable student.lora or full fine-tuning")
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of linear-warmup optimizer steps: ``ceil(warmup_ratio * total_steps)``."""
    if not 0 <= warmup_ratio < 1:
        raise ConfigError(f"trainer.warmup_ratio={warmup_ratio!r} must be in [0, 1)")
    return math.ceil(warmup_ratio * total_steps)


def build_optimizer_and_scheduler(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], lr: float,
                                  weight_decay: float, warmup_ratio: float, lr_schedule: str,
                                  total_steps: int, betas: tuple[float, float] = (0.9, 0.999),
                                  eps: float = 1e-8) -> dict[str, Any]:
    """AdamW + ``transformers.get_scheduler`` in Lightning's ``configure_optimizers`` format.

    Args:
        lr: peak learning rate (after warmup).
        warmup_ratio: fraction of ``total_steps`` with linear warmup from 0.
        lr_schedule: ``cosine`` | ``linear`` (decay to 0 at ``total_steps``) | ``constant`` (after warmup).
        total_steps: optimizer steps of the whole run (``trainer.estimated_stepping_batches``).

    Returns:
        ``{"optimizer": AdamW, "lr_scheduler": {"scheduler", "interval": "step", "frequency": 1}}``.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"trainer.lr_schedule={lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
    if not lr > 0:
        raise ConfigError(f"trainer.lr={lr!r} must be positive")
    if total_steps is None or not math.isfinite(total_steps) or total_steps < 1:
        raise ConfigError(f"cannot schedule the learning rate over {total_steps} optimizer steps: set "
                          "trainer.max_steps or trainer.max_epochs")
    total_steps = int(total_steps)
    optimizer = torch.optim.AdamW(parameter_groups(named_parameters, weight_decay), lr=lr, betas=betas, eps=eps)
    name = "constant_with_warmup" if lr_schedule == "constant" else lr_schedule
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(total_steps, warmup_ratio),
                              num_training_steps=total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
