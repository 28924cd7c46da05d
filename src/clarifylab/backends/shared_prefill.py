"""Shared-prefix prefill for one batched ``generate`` (issue 14, item 3).

The prompts of one generation chunk often share long prefixes: the decision points of one dialogue carry the
same system prompt, table and passage and each extends the previous one's history (16 PACIFIC decision points in
file order: 9,137 prompt tokens, 1,265 distinct prefixes); a rollout round's prompts share the dialogue they
continue. A left-padded batch prefill runs every row from its first token. Here the rows, in lexicographic token
order (so each row's longest common prefix with any earlier row is the one with the row just before it), are
prefilled one after the other, each continuing from the cached keys and values of the prefix it shares with the
previous row: only the tokens of the prompts' prefix tree (trie) run through the model. The decode pool
(:mod:`clarifylab.backends.decode_pool`) stacks the rows' caches, left-padded, and decodes them as one batch.

Every row's cache holds all its prompt tokens but the last; ``generate`` runs that last token (its logits give the
first new token), with positions from the attention mask as for any left-padded batch. The walk runs the model's
own causal attention through its cache (no custom mask), so it needs a model whose cache is plain
``DynamicLayer`` s (no sliding-window or recurrent layers): :func:`~clarifylab.backends.decode_pool.poolable_cache`
checks that.

The reuse is worth a batch-1 forward per row only when rows share enough: the backend walks a call's prompts this
way when, in lexicographic order, at least :data:`MIN_REUSED_FRACTION` of their cached tokens are reused, else
they enter the pool through one left-padded forward per refill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_REUSED_FRACTION = 0.25


def lexicographic_order(rows: Sequence[Sequence[int]]) -> list[int]:
    """Indices of ``rows`` in lexicographic token order (rows sharing a prefix become neighbours)."""
    return sorted(range(len(rows)), key=lambda i: list(rows[i]))


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def reuse_lengths(rows: Sequence[Sequence[int]], previous: Sequence[int] | None = None) -> list[int]:
    """Per row (in the given order), how many of its cached tokens (all but its last) the cache of the row before
    it (``previous`` for the first row, if given) already holds: ``min(common prefix, len(before) - 1,
    len(row) - 1)``; 0 for a first row without ``previous``."""
    reused = [0] * len(rows)
    for k, row in enumerate(rows):
        before = rows[k - 1] if k else previous
        if before is not None:
            reused[k] = max(0, min(common_prefix(before, row), len(before) - 1, len(row) - 1))
    return reused


def worth_sharing(rows: Sequence[Sequence[int]]) -> bool:
    """Whether the prefix walk pays for ``rows`` (in walking order): every row has a token to cache, and at least
    :data:`MIN_REUSED_FRACTION` of the cached tokens are reused from a previous row."""
    cached = sum(len(row) - 1 for row in rows)
    return min(len(row) for row in rows) >= 2 and sum(reuse_lengths(rows)) >= MIN_REUSED_FRACTION * cached


def prefix_walk(model: Any, rows: Sequence[Sequence[int]],
                previous: tuple[Sequence[int], list[tuple[Any, Any]]] | None = None
                ) -> tuple[list[list[tuple[Any, Any]]], int]:
    """Each row's cache over all its tokens but the last, computed once along the rows' prefix tree.

    Args:
        model: a causal LM in eval mode under no-grad (the caller's ``inference_mode_for``).
        rows: prompt token ids (each at least 2 tokens), walked in this order: pass them in lexicographic order
            for the most reuse.
        previous: ``(tokens, layers)`` of the row walked just before ``rows[0]`` (an earlier call's last row),
            whose cache the first row may continue from.

    Returns:
        ``(per_row, computed)``: per row, per layer ``(keys, values)`` of shape ``(1, kv_heads, len(row) - 1,
        head_dim)`` (positions ``0 .. len(row) - 2``); and the number of tokens that ran through the model.
    """
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    per_row: list[list[tuple[Any, Any]]] = []
    computed = 0
    before = previous[1] if previous is not None else []
    for row, reused in zip(rows, reuse_lengths(rows, None if previous is None else previous[0])):
        cache = DynamicCache(ddp_cache_data=[(k[:, :, :reused], v[:, :, :reused]) for k, v in before]
                             ) if reused else DynamicCache()
        todo = list(row[reused:len(row) - 1])
        if todo:
            cache = model(input_ids=torch.tensor([todo], device=device), past_key_values=cache, use_cache=True,
                          logits_to_keep=1).past_key_values
            computed += len(todo)
        before = [(layer.keys, layer.values) for layer in cache.layers]
        per_row.append(before)
    return per_row, computed
