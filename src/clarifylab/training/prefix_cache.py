"""Shared-prefix preference forward through the KV cache (``trainer.forward=prefix_cache``).

For each pair the prompt ``x[:P]`` (the sides' longest common prefix without a scored token,
:func:`~clarifylab.training.packed_pairs.shared_prefix_length`) runs once as one row with ``use_cache=True``,
keeping only its last logits (they predict the first reply token); the cache is repeated to two rows and the
chosen and the rejected replies (right-padded to the longer, so a pad never precedes a real token) continue from
position ``P`` in one call. The prompt thus runs with the model's own causal attention (no custom mask, no
attention over other pairs or padding) and gradients reach it through the cached keys and values.

Equal to ``concatenated_forward`` up to float rounding (tested). It loops over the batch's pairs, which is what
removes all padding; it needs a model whose forward returns a cache (``use_cache``), so it refuses gradient
checkpointing (which turns the cache off in training).
"""

from __future__ import annotations

from typing import Any

import torch

from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.logprobs import Batch, PairLogps, sequence_logprobs
from clarifylab.training.packed_pairs import shared_prefix_length, unpadded_side


def prefix_cache_pair(model: Any, chosen: tuple[list[int], list[int]], rejected: tuple[list[int], list[int]],
                      pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logps (2,), counts (2,))`` of one pair's chosen and rejected reply (module docstring).

    Args:
        chosen, rejected: ``(input_ids, labels)`` of each side, unpadded.
    """
    (c_ids, c_labels), (r_ids, r_labels) = chosen, rejected
    prompt = shared_prefix_length(c_ids, c_labels, r_ids, r_labels)
    if prompt == 0:
        raise ValueError("the chosen and rejected sides share no prompt token")
    device = next(model.parameters()).device
    width = max(len(c_ids), len(r_ids)) - prompt
    ids = torch.tensor([side[prompt:] + [pad_token_id] * (width + prompt - len(side)) for side in (c_ids, r_ids)],
                       device=device)  # (2, W)
    labels = torch.tensor([[IGNORE_INDEX] + lab[prompt:] + [IGNORE_INDEX] * (width + prompt - len(lab))
                           for lab in (c_labels, r_labels)], device=device)  # (2, W + 1)
    head = model(input_ids=torch.tensor([c_ids[:prompt]], device=device), use_cache=True, logits_to_keep=1)
    cache = head.past_key_values
    if cache is None:
        raise RuntimeError("trainer.forward=prefix_cache: the model returned no cache (gradient checkpointing or "
                           "use_cache=False); use trainer.forward=packed or concatenated")
    cache.batch_repeat_interleave(2)
    tail = model(input_ids=ids, past_key_values=cache, use_cache=True).logits  # (2, W, V)
    logits = torch.cat([head.logits[:, -1:].expand(2, -1, -1), tail], dim=1)  # (2, W + 1, V)
    return sequence_logprobs(logits, labels)


def prefix_cache_forward(model: Any, chosen: Batch, rejected: Batch, pad_token_id: int) -> PairLogps:
    """Both sides' summed log-probs of ``B`` pairs, each prompt once through the KV cache (module docstring).

    Args:
        chosen, rejected: right-padded side batches of ``B`` rows each (``training.logprobs`` layout).

    Returns:
        :class:`~clarifylab.training.logprobs.PairLogps` (attached to the graph when grad is enabled).
    """
    size = chosen["input_ids"].shape[0]
    if rejected["input_ids"].shape[0] != size:
        raise ValueError(f"{size} chosen rows but {rejected['input_ids'].shape[0]} rejected rows")
    pairs = [prefix_cache_pair(model, unpadded_side(chosen, b), unpadded_side(rejected, b), pad_token_id)
             for b in range(size)]
    logps = torch.stack([p[0] for p in pairs])  # (B, 2)
    counts = torch.stack([p[1] for p in pairs])  # (B, 2)
    return PairLogps(logps[:, 0], logps[:, 1], counts[:, 0], counts[:, 1])
