"""Continuous batching for a local model: a pool of ``batch_size`` running rows (issue 14, item 3).

One ``model.generate`` per chunk of prompts runs every row until the chunk's longest reply ends: a row that emitted
its end-of-turn token is padded, but its forward passes are still paid, and the next chunk waits. With replies of
5-48 tokens decoded together, about half the decode steps went to rows that had already stopped.

Here the prompts of one call stream through a pool of at most ``batch_size`` rows. ``generate`` runs in segments
of :data:`DECODE_SEGMENT` new tokens; after each one the rows that stopped (end-of-turn token or their own
``max_new_tokens``) leave the pool (``Cache.batch_select_indices``) and waiting prompts take their places. A prompt
enters with its cache already computed (every token but the last, so ``generate`` runs that one next and its
logits give the first new token): along the prompts' prefix tree when they share enough
(:mod:`clarifylab.backends.shared_prefill`), else by one left-padded forward. Rows of different lengths are
right-aligned (left padding, masked; positions from the attention mask, as ``generate`` computes them), so within a
segment this is ``generate`` unchanged: KV cache, logits processors, stopping criteria.

Greedy rows get the tokens one ``generate`` per prompt would give, up to float rounding across batch shapes
(tested). A sampled run draws from a batch whose rows change, so it is reproducible for a seed but not token-equal
to one ``generate`` call with that seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clarifylab.backends.shared_prefill import prefix_walk

DECODE_SEGMENT = 8  # new tokens per generate call between two refills of the pool


@dataclass
class Running:
    """The rows in the pool.

    Attributes:
        rows: the prompt index of each row.
        ids: ``(n, W)`` left-padded prompt + generated tokens.
        mask: ``(n, W)`` attention mask (0 on the left padding).
        cache: a ``DynamicCache`` over ``ids[:, :-1]`` (per layer keys and values ``(n, kv_heads, W - 1, head_dim)``).
    """

    rows: list[int]
    ids: Any
    mask: Any
    cache: Any


def poolable_cache(model: Any) -> bool:
    """Whether every layer of the model's dynamic cache is a plain :class:`transformers.DynamicLayer` (full
    attention, keys and values growing along the sequence), which the pool and the prefix walk slice and stack."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = getattr(model, "config", None)
    if config is None:
        return False
    try:
        cache = DynamicCache(config=config)
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


def completion_lengths(new_tokens: Any, stop_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Where each generated row ends.

    Args:
        new_tokens: ``(batch, steps)`` int tensor of generated ids (rows that stopped early are padded,
            possibly with a stop id, since pad often equals EOS).
        stop_ids: end-of-turn ids.

    Returns:
        ``(text_lengths, token_counts)``: per row, the number of tokens before the first stop id (the
        reply text) and the number of tokens generated (text plus the stop token when there is one).
    """
    import torch

    is_stop = torch.isin(new_tokens, torch.tensor(list(stop_ids), dtype=new_tokens.dtype))
    has_stop = is_stop.any(dim=1)
    first_stop = torch.where(has_stop, is_stop.long().argmax(dim=1), new_tokens.shape[1])  # (batch,)
    return first_stop.tolist(), (first_stop + has_stop.long()).tolist()


def left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    """``(ids, mask)``, both ``(len(rows), max length)``: the rows right-aligned, ``pad_id`` / 0 on the left."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + list(row) for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return ids, mask


def left_pad(tensor: Any, width: int, dim: int, value: float = 0) -> Any:
    """``tensor`` padded with ``value`` on the left of ``dim`` to ``width``."""
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_full(shape, value), tensor], dim=dim)


def merge(a: Running | None, b: Running, pad_id: int) -> Running:
    """One pool of ``a``'s rows then ``b``'s, right-aligned to the wider of the two."""
    import torch
    from transformers import DynamicCache

    if a is None:
        return b
    width = max(a.ids.shape[1], b.ids.shape[1])
    ids = torch.cat([left_pad(a.ids, width, 1, pad_id), left_pad(b.ids, width, 1, pad_id)])
    mask = torch.cat([left_pad(a.mask, width, 1), left_pad(b.mask, width, 1)])
    layers = [(torch.cat([left_pad(x.keys, width - 1, 2), left_pad(y.keys, width - 1, 2)]),
               torch.cat([left_pad(x.values, width - 1, 2), left_pad(y.values, width - 1, 2)]))
              for x, y in zip(a.cache.layers, b.cache.layers, strict=True)]
    return Running(a.rows + b.rows, ids, mask, DynamicCache(ddp_cache_data=layers))


def padded_prefill(model: Any, rows: Sequence[Sequence[int]], indices: list[int], pad_id: int) -> Running:
    """``rows`` (prompt token ids) entering the pool through one left-padded forward over all but their last
    token (positions from the attention mask, as ``generate`` computes them)."""
    ids, mask = left_padded(rows, pad_id, next(model.parameters()).device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                  use_cache=True, logits_to_keep=1).past_key_values
    return Running(indices, ids, mask, cache)


def walked_prefill(model: Any, rows: Sequence[Sequence[int]], indices: list[int], pad_id: int,
                   previous: tuple[Sequence[int], list[tuple[Any, Any]]] | None) -> tuple[Running, Any, int]:
    """``rows`` entering the pool with caches from :func:`~clarifylab.backends.shared_prefill.prefix_walk`
    (continuing from ``previous``, the last walked row); returns the pool part, the new last walked row and the
    tokens computed."""
    import torch
    from transformers import DynamicCache

    per_row, computed = prefix_walk(model, rows, previous)
    ids, mask = left_padded(rows, pad_id, next(model.parameters()).device)
    width = ids.shape[1]
    layers = [(torch.cat([left_pad(kv[layer][0], width - 1, 2) for kv in per_row]),
               torch.cat([left_pad(kv[layer][1], width - 1, 2) for kv in per_row]))
              for layer in range(len(per_row[0]))]
    return Running(indices, ids, mask, DynamicCache(ddp_cache_data=layers)), (rows[-1], per_row[-1]), computed


def pooled_generate(model: Any, rows: Sequence[Sequence[int]], generation_config: Any, stop_ids: Sequence[int],
                    pad_id: int, batch_size: int, share_prefixes: bool,
                    on_finished: Callable[[int], None] | None = None,
                    segment: int = DECODE_SEGMENT) -> tuple[list[list[int]], int]:
    """New tokens for every prompt, the prompts streaming through a pool of ``batch_size`` rows (module docstring).

    Args:
        model: a causal LM in eval mode under no-grad (the caller's).
        rows: prompt token ids (each at least 2 tokens), in the order they enter the pool
            (lexicographic order when sharing prefixes: each row then shares most with the one before it).
        generation_config: the decoding; ``max_new_tokens`` is each row's budget.
        stop_ids: ids that end a row.
        pad_id: left padding.
        batch_size: rows decoded together.
        share_prefixes: enter rows through the prefix walk (else one padded forward per refill).
        on_finished: called with the number of rows that just left the pool (progress).
        segment: new tokens per ``generate`` call (a pool of one row runs one call per prompt: nothing to refill).

    Returns:
        ``(new_tokens, prefilled)``: per prompt its new tokens (up to and including its stop token, or
        ``max_new_tokens`` of them), and the number of prompt tokens that ran through the model.
    """
    import torch

    budget = int(generation_config.max_new_tokens)
    segment = budget if batch_size == 1 else segment
    produced: list[list[int]] = [[] for _ in rows]
    running: Running | None = None
    waiting, walked, prefilled = 0, None, 0
    while waiting < len(rows) or running is not None:
        free = batch_size - (0 if running is None else len(running.rows))
        if free > 0 and waiting < len(rows):  # refill
            indices = list(range(waiting, min(len(rows), waiting + free)))
            waiting = indices[-1] + 1
            entering = [rows[i] for i in indices]
            if share_prefixes:
                part, walked, computed = walked_prefill(model, entering, indices, pad_id, walked)
            else:
                part, computed = padded_prefill(model, entering, indices, pad_id), sum(map(len, entering)) - len(
                    entering)
            prefilled += computed + len(entering)  # generate runs each last prompt token
            running = merge(running, part, pad_id)
        assert running is not None
        config = copy.deepcopy(generation_config)
        config.max_new_tokens = min(segment, min(budget - len(produced[i]) for i in running.rows))
        config.return_dict_in_generate = True
        out = model.generate(input_ids=running.ids, attention_mask=running.mask, past_key_values=running.cache,
                             generation_config=config)
        new = out.sequences[:, running.ids.shape[1]:].cpu()  # (n, <= step)
        text_lengths, counts = completion_lengths(new, stop_ids)
        for j, row in enumerate(running.rows):
            produced[row] += new[j, :counts[j]].tolist()
        keep = [j for j, row in enumerate(running.rows)
                if text_lengths[j] == counts[j] and len(produced[row]) < budget]  # no stop token, budget left
        if on_finished is not None and len(keep) < len(running.rows):
            on_finished(len(running.rows) - len(keep))
        if not keep:
            running = None
            continue
        index = torch.tensor(keep, device=out.sequences.device)
        cache = out.past_key_values  # over every token but each row's last
        cache.batch_select_indices(index)
        mask = torch.cat([running.mask, running.mask.new_ones(new.shape)], dim=1)
        running = Running([running.rows[j] for j in keep], out.sequences[index], mask[index], cache)
    return produced, prefilled


def chunked_generate(model: Any, rows: Sequence[Sequence[int]], generation_config: Any, stop_ids: Sequence[int],
                     pad_id: int, batch_size: int, on_finished: Callable[[int], None] | None = None
                     ) -> tuple[list[list[int]], int]:
    """The fallback for a model whose cache the pool cannot slice and re-pad (sliding-window or recurrent
    layers): one left-padded ``generate`` per chunk of ``batch_size`` rows, in the given order. Same returns as
    :func:`pooled_generate`."""
    device = next(model.parameters()).device
    produced: list[list[int]] = []
    for start in range(0, len(rows), batch_size):
        ids, mask = left_padded(rows[start:start + batch_size], pad_id, device)
        new = model.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config)[:, ids.shape[1]:]
        _, counts = completion_lengths(new.cpu(), stop_ids)
        produced += [new[j, :counts[j]].tolist() for j in range(ids.shape[0])]
        if on_finished is not None:
            on_finished(ids.shape[0])
    return produced, sum(len(row) for row in rows)

