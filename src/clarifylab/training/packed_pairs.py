"""Shared-prefix packed forward: each pair's prompt is computed once, not once per side.

A preference pair's two sides are ``prompt + chosen`` and ``prompt + rejected``; the plain path
(:func:`clarifylab.training.logprobs.concatenated_forward`) runs both, so the prompt — 600-2,400 tokens on
PACIFIC against 10-60-token replies — passes every layer twice per model, padded to the longest side.
Here each pair becomes one segment ``[prompt | chosen | rejected]`` and segments are packed into rows
(first fit, in batch order, into rows as long as the longest segment: short pairs share a row, the padding is what
the last segment of a row leaves; attention cost stays at most ``rows x L^2``, since SDPA computes the masked-out
cross-segment blocks too) with

* **position ids** that restart after the prompt: chosen tokens sit at ``P .. P+C-1`` and so do the
  rejected ones (``P .. P+R-1``), exactly where the plain path puts them;
* a **4-D attention mask** ``(rows, 1, L, L)``: causal within a segment, no attention across segments,
  and the rejected tokens do not see the chosen tokens — so every token sees exactly the context it has
  in the plain forward, and its logits are the same (up to float summation order, ~1e-6 in fp32).

The logits that predict the scored tokens are the only ones projected onto the vocabulary (the
``logits_to_keep`` trick, here as a boolean position mask): for chosen/rejected token ``j`` the
predictor is the token before it in its own side — the last prompt token for the first token of either
side. The prompt of a pair is the longest common token prefix of its two sides that holds no scored
token, so nothing is assumed about how they were tokenized.

Shapes: ``B`` pairs, ``T`` padded side length, ``R`` packed rows of length ``L``, ``N`` scored tokens
(both sides), ``U <= N`` distinct predictor positions, ``V`` vocabulary size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from clarifylab.errors import ConfigError
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.logprobs import Batch, PairLogps

log = logging.getLogger(__name__)

# Attention implementations that apply a custom 4-D mask as given, and the mask dtype each expects
# (transformers' eager attention ADDS the mask to the scores, so it needs 0 / -inf; SDPA takes booleans).
MASK_DTYPES = {"sdpa": "bool", "eager": "additive"}
FORWARD_MODES = ("auto", "packed", "prefix_cache", "concatenated")

PROMPT, CHOSEN, REJECTED = 0, 1, 2


@dataclass
class PackedPairs:
    """``B`` pairs packed into ``R`` rows (see the module docstring).

    Attributes:
        input_ids: ``(R, L)`` int64; padding after a row's last segment.
        position_ids: ``(R, L)`` int64; restart at ``P`` for the rejected side of each pair.
        allowed: ``(R, L, L)`` bool, ``allowed[r, q, k]``: query ``q`` may attend to key ``k``.
        keep: ``(R, L)`` bool, the ``U`` predictor positions whose logits are needed.
        predictor: ``(N,)`` int64 index into the ``U`` kept positions (row-major) for each scored token.
        targets: ``(N,)`` int64 scored token ids.
        side_row: ``(N,)`` int64 in ``[0, 2B)``: chosen rows first, then rejected (as ``PairLogps``).
        pairs: ``B``.
        unique_tokens: prompt + chosen + rejected tokens, each counted once.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    allowed: torch.Tensor
    keep: torch.Tensor
    predictor: torch.Tensor
    targets: torch.Tensor
    side_row: torch.Tensor
    pairs: int
    unique_tokens: int


def unpadded_side(side: Batch, row: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one right-padded row, without its padding."""
    length = int(side["attention_mask"][row].sum())
    return side["input_ids"][row, :length].tolist(), side["labels"][row, :length].tolist()


def shared_prefix_length(chosen_ids: list[int], chosen_labels: list[int], rejected_ids: list[int],
                         rejected_labels: list[int]) -> int:
    """The prompt length ``P``: the longest common token prefix of both sides before either's first scored
    token (``labels != IGNORE_INDEX``)."""
    limit = min(len(chosen_ids), len(rejected_ids))
    for side in (chosen_labels, rejected_labels):
        scored = [i for i, label in enumerate(side) if label != IGNORE_INDEX]
        limit = min(limit, scored[0] if scored else len(side))
    length = 0
    while length < limit and chosen_ids[length] == rejected_ids[length]:
        length += 1
    return length


def _first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Segment indices per row: each segment goes into the first row it fits (in input order)."""
    rows: list[list[int]] = []
    used: list[int] = []
    for index, length in enumerate(lengths):
        for row, total in enumerate(used):
            if total + length <= capacity:
                rows[row].append(index)
                used[row] += length
                break
        else:
            rows.append([index])
            used.append(length)
    return rows


def pack_pairs(chosen: Batch, rejected: Batch, pad_token_id: int, row_tokens: int | None = None) -> PackedPairs:
    """Pack ``B`` pairs (right-padded side batches, see ``training.logprobs``) into shared-prefix rows of
    ``row_tokens`` (default: the longest segment's length; a longer segment gets a row of its own).

    Raises:
        ValueError: different numbers of rows, or a pair whose sides share no prompt token.
    """
    size = chosen["input_ids"].shape[0]
    if rejected["input_ids"].shape[0] != size:
        raise ValueError(f"{size} chosen rows but {rejected['input_ids'].shape[0]} rejected rows")
    segments = []  # per pair: (tokens, positions, sides, scored [(local index, target, side_row)])
    for b in range(size):
        (c_ids, c_labels), (r_ids, r_labels) = unpadded_side(chosen, b), unpadded_side(rejected, b)
        prompt = shared_prefix_length(c_ids, c_labels, r_ids, r_labels)
        if prompt == 0:
            raise ValueError(f"pair {b}: the chosen and rejected sides share no prompt token")
        chosen_tail, rejected_tail = len(c_ids) - prompt, len(r_ids) - prompt
        tokens = c_ids + r_ids[prompt:]
        positions = list(range(len(c_ids))) + list(range(prompt, len(r_ids)))
        sides = [PROMPT] * prompt + [CHOSEN] * chosen_tail + [REJECTED] * rejected_tail
        scored = [(j - 1, c_ids[j], b) for j in range(prompt, len(c_ids)) if c_labels[j] != IGNORE_INDEX]
        # rejected token j (j >= P) sits at len(c_ids) + j - P; its predictor is the token before it on its
        # own side: the last prompt token for j == P
        scored += [(prompt - 1 if j == prompt else len(c_ids) + j - 1 - prompt, r_ids[j], size + b)
                   for j in range(prompt, len(r_ids)) if r_labels[j] != IGNORE_INDEX]
        segments.append((tokens, positions, sides, scored))
    lengths = [len(segment[0]) for segment in segments]
    rows = _first_fit(lengths, max(row_tokens or 0, max(lengths)))
    width = max(sum(lengths[i] for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    group = torch.empty((len(rows), width), dtype=torch.long)  # segment id; each padding token its own
    side = torch.full((len(rows), width), PROMPT, dtype=torch.long)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)
    where, targets, side_rows = [], [], []  # (row, position) of each scored token's predictor
    next_pad_group = size
    for r, row in enumerate(rows):
        offset = 0
        for index in row:
            tokens, positions, sides, scored = segments[index]
            span = slice(offset, offset + len(tokens))
            input_ids[r, span] = torch.tensor(tokens)
            position_ids[r, span] = torch.tensor(positions)
            group[r, span] = index
            side[r, span] = torch.tensor(sides)
            for local, target, side_row in scored:
                keep[r, offset + local] = True
                where.append((r, offset + local))
                targets.append(target)
                side_rows.append(side_row)
            offset += len(tokens)
        padding = width - offset
        group[r, offset:] = torch.arange(next_pad_group, next_pad_group + padding)  # pads attend to themselves
        next_pad_group += padding
    same_segment = group[:, :, None] == group[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    visible_side = (side[:, None, :] == PROMPT) | (side[:, None, :] == side[:, :, None])
    allowed = same_segment & causal & visible_side
    flat_index = torch.cumsum(keep.flatten(), 0) - 1  # row-major rank of each kept position
    predictor = flat_index[torch.tensor([r * width + p for r, p in where], dtype=torch.long)]
    return PackedPairs(input_ids, position_ids, allowed, keep, predictor, torch.tensor(targets, dtype=torch.long),
                       torch.tensor(side_rows, dtype=torch.long), size, sum(lengths))


def _model_config(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config


def packed_support(model: Any) -> str | None:
    """``None`` when ``model`` can take the packed mask, else the reason it cannot (one line)."""
    config = _model_config(model)
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in MASK_DTYPES:
        return (f"attention implementation {implementation!r} does not take a custom 4-D mask "
                f"(packing needs one of {sorted(MASK_DTYPES)})")
    layer_types = getattr(config, "layer_types", None) or []
    if any(kind != "full_attention" for kind in layer_types) or (
            getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)):
        return "the model has sliding-window or non-full attention layers, which a custom mask would override"
    return None


def resolve_forward_mode(model: Any, forward: str) -> str:
    """``packed``, ``prefix_cache`` or ``concatenated`` for ``trainer.forward`` (``auto`` | ``packed`` |
    ``prefix_cache`` (``training/prefix_cache.py``; refused under gradient checkpointing) | ``concatenated``);
    ``auto`` falls back to ``concatenated`` (logged once, here) when the model cannot take the packed mask."""
    if forward not in FORWARD_MODES:
        raise ConfigError(f"trainer.forward={forward!r} is not one of {list(FORWARD_MODES)}")
    if forward == "concatenated":
        return forward
    if forward == "prefix_cache":
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if getattr(base, "is_activation_checkpointing", False):
            raise ConfigError("trainer.forward=prefix_cache needs the KV cache, which gradient checkpointing turns "
                              "off: use trainer.forward=packed or concatenated, or student.gradient_checkpointing=false")
        return forward
    reason = packed_support(model)
    if reason is None:
        return "packed"
    if forward == "packed":
        raise ConfigError(f"trainer.forward=packed: {reason}; use trainer.forward=auto or concatenated")
    log.warning("preference forward: concatenated (plain) path, because %s", reason)
    return "concatenated"


def attention_mask_for(model: Any, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The ``(R, 1, L, L)`` mask in the form the model's attention implementation applies."""
    mask = allowed[:, None]
    if MASK_DTYPES[_model_config(model)._attn_implementation] == "bool":
        return mask
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


def packed_forward(model: Any, chosen: Batch, rejected: Batch, pad_token_id: int,
                   row_tokens: int | None = None) -> PairLogps:
    """Score both sides of ``B`` pairs with each prompt computed once (see the module docstring).

    Args:
        model: a causal LM taking ``input_ids``, a 4-D ``attention_mask``, ``position_ids`` and a boolean
            ``logits_to_keep`` (transformers >= 5); check it with :func:`packed_support` first.
        chosen, rejected: batches of ``B`` rows each (``training.logprobs`` layout), any lengths.
        pad_token_id: id written into row padding (masked).
        row_tokens: row capacity (default: the longest segment), see :func:`pack_pairs`.

    Returns:
        :class:`PairLogps`, equal to ``concatenated_forward`` (attached to the graph when grad is enabled).
    """
    packed = pack_pairs(chosen, rejected, pad_token_id, row_tokens)
    device = chosen["input_ids"].device
    dtype = next(model.parameters()).dtype
    logits = model(input_ids=packed.input_ids.to(device), position_ids=packed.position_ids.to(device),
                   attention_mask=attention_mask_for(model, packed.allowed, dtype).to(device), use_cache=False,
                   logits_to_keep=packed.keep.to(device)).logits  # (U, V)
    logits = logits.reshape(-1, logits.shape[-1])[packed.predictor.to(device)].float()  # (N, V)
    targets = packed.targets.to(device)
    token_logps = logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # (N,)
    membership = packed.side_row.to(device)[None, :] == torch.arange(2 * packed.pairs, device=device)[:, None]
    logps = (membership * token_logps[None, :]).sum(dim=-1)  # (2B,): a fixed-order row sum (deterministic)
    counts = membership.sum(dim=-1)
    size = packed.pairs
    return PairLogps(logps[:size], logps[size:], counts[:size], counts[size:])
