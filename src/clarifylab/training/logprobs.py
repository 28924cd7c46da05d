"""Sequence log-probabilities of labelled continuations, and the concatenated chosen/rejected forward.

Shapes: ``B`` pairs, ``T`` sequence length, ``V`` vocabulary size. Batches are dicts of int64
``input_ids`` / ``attention_mask`` / ``labels`` tensors of shape ``(B, T)``, right-padded, with
``labels = IGNORE_INDEX`` outside the scored continuation (see ``training.chat_tokenize``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from clarifylab.training.chat_tokenize import IGNORE_INDEX

Batch = dict[str, torch.Tensor]


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labelled tokens: ``log pi(y | p) = sum_t log pi(y_t | p, y_<t)``.

    The logits at position ``t`` predict the token at ``t + 1`` (the shift happens here; labels are
    aligned with the inputs). Only the ``N`` labelled positions are gathered before the float32
    log-softmax (``logit[target] - logsumexp(logits)``), so the extra memory is ``N x V`` float32, not
    ``B x T x V``; positions are summed per row by a masked scatter and a row sum (deterministic, unlike
    ``index_add_`` on GPU).

    Args:
        logits: ``(B, T, V)`` model outputs, any float dtype.
        labels: ``(B, T)`` int64 target ids aligned with the inputs; ``IGNORE_INDEX`` (-100) elsewhere.

    Returns:
        ``(sum_logps, n_tokens)``: ``(B,)`` float32 summed log-probs in nats (0 for a row without labels),
        attached to the graph of ``logits``, and ``(B,)`` int64 numbers of labelled target tokens.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on (B, T)")
    targets = labels[:, 1:]  # (B, T-1)
    keep = targets != IGNORE_INDEX  # (B, T-1)
    scored = logits[:, :-1][keep].float()  # (N, V)
    token_logps = scored.gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scored, dim=-1)  # (N,)
    per_position = torch.zeros(keep.shape, dtype=token_logps.dtype, device=logits.device).masked_scatter(
        keep, token_logps)  # (B, T-1), row-major like the boolean indexing above
    return per_position.sum(dim=-1), keep.sum(dim=-1)


def pad_batch_to_length(batch: Batch, length: int, pad_token_id: int) -> Batch:
    """Right-pad ``input_ids`` / ``attention_mask`` / ``labels`` of shape ``(B, T)`` to ``(B, length)``
    with ``pad_token_id`` / 0 / ``IGNORE_INDEX`` (the tensor counterpart of ``RightPadCollator``)."""
    extra = length - batch["input_ids"].shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad a batch of length {batch['input_ids'].shape[1]} to {length}")
    if extra == 0:
        return dict(batch)
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    return {key: F.pad(value, (0, extra), value=fill[key]) if key in fill else value for key, value in batch.items()}


class PairLogps(NamedTuple):
    """Summed continuation log-probs ``(B,)`` float32 and scored-token counts ``(B,)`` int64 of both sides."""

    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor


def concatenated_forward(model: Any, chosen: Batch, rejected: Batch, pad_token_id: int) -> PairLogps:
    """Score the chosen and the rejected continuations of ``B`` pairs in ONE forward over ``(2B, T)``.

    Both sides are right-padded to the longer length and stacked (chosen rows first), so the model
    runs once (one kernel launch sequence, one set of activations for backward) and both sides see
    identical numerics — e.g. a fresh LoRA policy and its adapter-disabled reference give exactly
    equal log-probs.

    Args:
        model: a causal LM called as ``model(input_ids=, attention_mask=, use_cache=False).logits``.
        chosen, rejected: batches (see module docstring) with ``B`` rows each, any lengths.
        pad_token_id: id written into added padding (masked; any valid id).

    Returns:
        :class:`PairLogps` (attached to the graph when grad is enabled).
    """
    size = chosen["input_ids"].shape[0]
    if rejected["input_ids"].shape[0] != size:
        raise ValueError(f"{size} chosen rows but {rejected['input_ids'].shape[0]} rejected rows")
    length = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
    chosen, rejected = (pad_batch_to_length(side, length, pad_token_id) for side in (chosen, rejected))
    both = {key: torch.cat([chosen[key], rejected[key]], dim=0) for key in ("input_ids", "attention_mask", "labels")}
    start = first_scored_position(both["labels"])
    logits = model(input_ids=both["input_ids"], attention_mask=both["attention_mask"], use_cache=False,
                   logits_to_keep=length - start).logits  # (2B, T - start, V)
    logps, n_tokens = sequence_logprobs(logits, both["labels"][:, start:])
    return PairLogps(logps[:size], logps[size:], n_tokens[:size], n_tokens[size:])


def first_scored_position(labels: torch.Tensor) -> int:
    """The first position whose logits are needed: one before the earliest labelled token of any row.

    Prompts are long and continuations short, so asking the model for the logits of positions
    ``start .. T-1`` only (``logits_to_keep = T - start``) skips most of the ``V``-wide output layer and its
    ``(2B, T, V)`` activation; the log-probs are unchanged (positions before ``start`` score no label).

    Args:
        labels: ``(B, T)`` int64, ``IGNORE_INDEX`` outside the continuations.

    Returns:
        ``start`` in ``[0, T - 1]`` (0 when no row has a label).
    """
    scored = (labels != IGNORE_INDEX).any(dim=0).nonzero()  # positions labelled in some row
    return max(int(scored[0]) - 1, 0) if len(scored) else 0
