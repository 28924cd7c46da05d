"""Online group-relative policy gradient as a LightningModule (beside the preference module).

Each training step asks a ``rollout`` hook for freshly sampled, scored trajectories (a method builds them:
SML runs teacher-in-the-loop dialogues), turns rewards into group-normalised advantages
(:func:`~clarifylab.training.policy_gradient.group_advantages`), tokenizes each conversation with the
policy's own (assistant) turns as the only targets (:mod:`clarifylab.training.chat_tokenize`), and minimises
:func:`~clarifylab.training.policy_gradient.policy_gradient_loss` (no KL, no reference model).

The hook receives the optimizer step (``global_step``), so which problems a step uses depends on the step
alone: a resumed run continues with exactly the problems the interrupted one would have used. Checkpoints,
RNG states and the frozen-base rule are the SFT module's (:class:`~clarifylab.training.sft_module.SFTModule`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader

from clarifylab.backends.base import Message
from clarifylab.training.chat_tokenize import IGNORE_INDEX, tokenize_conversation
from clarifylab.training.policy_gradient import group_advantages, policy_gradient_loss, token_logprobs
from clarifylab.training.sft_module import SFTModule


@dataclass
class ScoredTrajectory:
    """One sampled conversation: its messages (assistant = the policy), reward and group (its problem).

    ``record`` is any JSON-serializable detail to log with it (ids, turns, success turn).
    """

    messages: list[Message]
    reward: float
    group: int
    record: dict[str, Any] | None = None


Rollout = Callable[[int], Sequence[ScoredTrajectory]]


def pad_features(features: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad tokenized conversations into ``(B, T)`` int64 tensors."""
    length = max(len(f["input_ids"]) for f in features)
    out = {"input_ids": [], "attention_mask": [], "labels": []}
    for f in features:
        pad = length - len(f["input_ids"])
        out["input_ids"].append(f["input_ids"] + [pad_id] * pad)
        out["attention_mask"].append(f["attention_mask"] + [0] * pad)
        out["labels"].append(f["labels"] + [IGNORE_INDEX] * pad)
    return {key: torch.tensor(value, dtype=torch.long) for key, value in out.items()}


class GroupPolicyGradientModule(SFTModule):
    """REINFORCE with group-relative advantages on trajectories from ``rollout`` (module docstring).

    Args:
        model, lr, weight_decay, warmup_ratio, lr_schedule: as :class:`SFTModule`.
        rollout: ``step -> trajectories`` (sampled with the current weights).
        tokenizer: the policy's (fast) tokenizer.
        max_length: tokens per conversation; longer ones are dropped from the step (counted).
        end_of_turn: end-of-turn text inside the loss mask (None = detect).
        log_path: a JSONL file every step's trajectories (record, reward, advantage) are appended to.
        forward_batch_size: trajectories per forward pass (the loss is the same token mean; less memory).
        recompute_chunks: run each chunk under activation checkpointing (``torch.utils.checkpoint``, non-reentrant):
            the forward keeps only each chunk's inputs and the backward recomputes one chunk at a time, so the
            activations held at once are one chunk's, not the whole step's (one extra forward per chunk; same loss
            and gradients). Without it every chunk's graph is kept until the step's single backward.

    Logged per step: ``train/loss``, ``train/reward`` (mean), ``train/success`` (share with reward > 0),
    ``train/zero_adv_groups`` (groups without signal), ``train/tokens``, ``train/dropped``.
    """

    def __init__(self, model: torch.nn.Module, rollout: Rollout, tokenizer: Any, max_length: int, lr: float,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.0, lr_schedule: str = "constant",
                 end_of_turn: str | None = None, log_path: str | Path | None = None,
                 forward_batch_size: int = 8, recompute_chunks: bool = False) -> None:
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, lr_schedule=lr_schedule)
        # plain values only: the rollout hook and tokenizer are not hyperparameters (and not serializable)
        self.save_hyperparameters(ignore=["model", "rollout", "tokenizer", "log_path"])
        self.rollout = rollout
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.end_of_turn = end_of_turn
        self.log_path = Path(log_path) if log_path else None
        self.forward_batch_size = max(1, int(forward_batch_size))
        self.recompute_chunks = bool(recompute_chunks)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        trajectories = list(self.rollout(self.global_step))
        advantages = group_advantages([t.reward for t in trajectories], [t.group for t in trajectories])
        features, kept = [], []
        for i, t in enumerate(trajectories):
            feature = tokenize_conversation(t.messages, self.tokenizer, self.max_length, loss_on="all_assistant",
                                            truncation="drop", end_of_turn=self.end_of_turn)
            if feature is not None:
                features.append(feature)
                kept.append(i)
        self._log_rollouts(trajectories, advantages)
        n_groups = len({t.group for t in trajectories})
        zero_groups = sum(all(advantages[i] == 0 for i, t in enumerate(trajectories) if t.group == g)
                          for g in {t.group for t in trajectories})
        size = max(len(trajectories), 1)
        self.log("train/reward", sum(t.reward for t in trajectories) / size, on_step=True, batch_size=size,
                 prog_bar=True)
        self.log("train/success", sum(t.reward > 0 for t in trajectories) / size, on_step=True, batch_size=size)
        self.log("train/zero_adv_groups", float(zero_groups) / max(n_groups, 1), on_step=True, batch_size=size)
        self.log("train/dropped", float(len(trajectories) - len(kept)), on_step=True, batch_size=size)
        if not features:
            return sum(p.sum() * 0.0 for p in self.model.parameters() if p.requires_grad)
        # One forward per chunk of ``forward_batch_size`` trajectories; the token-mean over the whole step is kept by
        # weighting each chunk's mean by its share of the step's policy tokens.
        chunks = [list(range(s, min(s + self.forward_batch_size, len(features))))
                  for s in range(0, len(features), self.forward_batch_size)]
        total_tokens = sum(sum(label != IGNORE_INDEX for label in f["labels"][1:]) for f in features)
        loss = torch.zeros((), device=self.device)
        n_tokens = torch.zeros((), dtype=torch.long)
        for chunk in chunks:
            tensors = {k: v.to(self.device) for k, v in pad_features([features[j] for j in chunk], self.pad_id).items()}
            mask = tensors["labels"][:, 1:] != IGNORE_INDEX
            adv = torch.tensor([advantages[kept[j]] for j in chunk], dtype=torch.float32, device=self.device)
            args = (tensors["input_ids"], tensors["attention_mask"], mask, adv)
            if self.recompute_chunks:
                part = checkpoint(self._chunk_loss, *args, use_reentrant=False)
            else:
                part = self._chunk_loss(*args)
            part_tokens = mask.sum()
            loss = loss + part * (part_tokens.float() / max(total_tokens, 1))
            n_tokens = n_tokens + part_tokens.cpu()
        self.tokens_seen += int(n_tokens)
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=size)
        self.log("train/tokens", n_tokens.float(), on_step=True, batch_size=size)
        return loss

    def _chunk_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor,
                    advantages: torch.Tensor) -> torch.Tensor:
        """The token-mean policy-gradient loss of one chunk (``(b, T)`` ids and attention mask, ``(b, T-1)``
        target mask, ``(b,)`` advantages)."""
        logits = self(input_ids, attention_mask)
        logps = token_logprobs(logits, input_ids, mask)  # (b, T-1), 0 off the mask
        return policy_gradient_loss(logps, mask, advantages)[0]

    def _log_rollouts(self, trajectories: Sequence[ScoredTrajectory], advantages: Sequence[float]) -> None:
        if self.log_path is None or not self.trainer.is_global_zero:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as handle:
            for t, a in zip(trajectories, advantages):
                handle.write(json.dumps({"step": self.global_step, "group": t.group, "reward": t.reward,
                                         "advantage": a, **(t.record or {})}, ensure_ascii=False) + "\n")


class StepDataModule(pl.LightningDataModule):
    """``max_steps`` placeholder batches (the step index): the rollout hook, not the loader, supplies data."""

    def __init__(self, max_steps: int) -> None:
        super().__init__()
        self.max_steps = max_steps

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(range(self.max_steps)), batch_size=1, shuffle=False)
