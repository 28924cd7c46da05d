"""Pure loss functions of the trainers (tensors in, tensors out; no module state).

Shapes: ``B`` batch, ``T`` sequence length, ``V`` vocabulary size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarifylab.training.chat_tokenize import IGNORE_INDEX

if TYPE_CHECKING:
    import torch


def masked_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-mean negative log-likelihood of the labelled tokens (the SFT loss).

    ``loss = -(1/N) * sum_{(b,t): labels[b,t+1] != IGNORE} log softmax(logits[b,t])[labels[b,t+1]]``,
    i.e. the logits at position ``t`` predict the token at ``t + 1`` (the shift happens here, the labels
    are aligned with the inputs), averaged over the ``N`` labelled target tokens of the whole batch.

    Only the labelled positions are gathered before the (float32) log-softmax, so memory grows with
    ``N x V``, not ``B x T x V``.

    Args:
        logits: ``(B, T, V)`` model outputs, any float dtype.
        labels: ``(B, T)`` int64 target ids aligned with the inputs; ``IGNORE_INDEX`` (-100) outside
            the loss mask.

    Returns:
        ``(loss, n_tokens)``: scalar float32 mean NLL in nats per token (0, still attached to the graph,
        when ``N = 0``) and the int64 scalar ``N``.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:]  # (B, T-1)
    keep = targets != IGNORE_INDEX  # (B, T-1)
    n_tokens = keep.sum()
    if int(n_tokens) == 0:
        return logits.sum() * 0.0, n_tokens
    predicted = logits[:, :-1][keep].float()  # (N, V)
    loss = F.cross_entropy(predicted, targets[keep], reduction="mean")
    return loss, n_tokens
