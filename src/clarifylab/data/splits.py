"""Deterministic conversation-level splits for datasets that ship only one labelled split.

PACIFIC and Abg-CoQA come with one labelled file here. Their Examples carry
``meta["conversation_id"]`` (a PACIFIC dialogue, an Abg-CoQA story); all Examples of a conversation
land in the same split, so no table, passage or dialogue prefix is seen in training and in evaluation.

1. Held-out eval set (split ``test``): the ``round(eval_fraction * N)`` conversations that come first
   in the ``(split_seed, "eval")`` hash order (:func:`seeded_order`), so its size is exact. An id's
   rank relative to any other id never depends on which further ids exist: when the file grows, the
   eval set changes only at its boundary (a new conversation that ranks before the last held-out one
   pushes that one into the pool). The rest is the pool.
2. Validation (split ``validation``): the first ``val_conversations`` pool conversations in the
   ``(split_seed, "validation")`` hash order: small, fixed for a given split_seed whatever the
   training subset, and disjoint from training.
3. Training (split ``train``): the rest of the pool; with ``conversations = n``, the first ``n`` in
   the ``(subset_seed, "subset")`` hash order (:func:`subset_conversations`). For a fixed seed the
   subsets are nested: the 50-conversation subset lies inside the 100 one, which lies inside the 250.

A conversation id must name the grounding that must not leak, not just a record: Abg-CoQA reuses CoQA
passages under different story ids (5 passages of the real file appear under two ids each), so its
loader groups stories by :func:`passage_key` (a hash of the normalised story text) and names each group
by its smallest story id (:func:`merge_by_content`): no passage is in two splits, and a story whose
passage is not shared keeps its id (and so its split).

Sizes on the real copies with the defaults (eval_fraction 0.2, val_conversations 10, seeds 0) are in
``conf/dataset/pacific.yaml`` and ``conf/dataset/abg_coqa.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from clarifylab.data.schema import Example
from clarifylab.errors import ConfigError, DataFormatError

SPLIT_NAMES = ("train", "validation", "test", "all")


def unit_hash(key: str, seed: int, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by (``key``, ``seed``, ``salt``): the first 8 bytes of SHA-256."""
    digest = hashlib.sha256(f"{seed}\x1f{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def passage_key(text: str) -> str:
    """A conversation id fixed by a passage's content: ``"passage-"`` + the first 16 hex digits of the SHA-256 of
    the text lowercased with whitespace runs collapsed (so copies that differ only in case or spacing share it)."""
    normalized = " ".join(text.lower().split())
    return "passage-" + hashlib.sha256(normalized.encode()).hexdigest()[:16]


def merge_by_content(id_keys: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each id -> the smallest id with the same content key: ``[("b", k), ("a", k), ("c", k2)]`` ->
    ``{"b": "a", "a": "a", "c": "c"}``. Ids whose content is shared become one conversation."""
    pairs = list(id_keys)
    smallest: dict[str, str] = {}
    for conversation, key in pairs:
        smallest[key] = min(smallest.get(key, conversation), conversation)
    return {conversation: smallest[key] for conversation, key in pairs}


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def split_dialogues(dialogue_ids: Iterable[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split conversation ids into (training pool, held-out eval set), each in input order.

    The eval set is the first ``floor(eval_fraction * N + 0.5)`` of ``seeded_order(ids, seed, "eval")``
    (N distinct ids; repeated ids count once).

    Raises:
        ConfigError: ``eval_fraction`` outside [0, 1).
    """
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)) or not 0 <= eval_fraction < 1:
        raise ConfigError(f"dataset.eval_fraction must be a number in [0, 1), got {eval_fraction!r}")
    ids = _unique(dialogue_ids)
    held_out = set(seeded_order(ids, seed, "eval")[:math.floor(eval_fraction * len(ids) + 0.5)])
    return [i for i in ids if i not in held_out], [i for i in ids if i in held_out]


def seeded_order(ids: Iterable[str], seed: int, salt: str = "subset") -> list[str]:
    """The ids (repeats dropped) sorted by ``unit_hash(id, seed, salt)``: a seeded permutation in which an
    id's rank relative to any other id does not depend on which further ids are present."""
    return sorted(_unique(ids), key=lambda key: (unit_hash(key, seed, salt), key))


def subset_conversations(pool: Sequence[str], n: int | None, seed: int) -> list[str]:
    """The first ``n`` ids of ``seeded_order(pool, seed)`` (all of them when ``n`` is ``None``).

    Nested by construction: for a fixed ``pool`` and ``seed``, the subset of size ``m <= n`` is a prefix
    of the subset of size ``n``.

    Raises:
        ConfigError: ``n`` is not a positive integer or exceeds the pool (names ``dataset.conversations``).
    """
    ordered = seeded_order(pool, seed)
    if n is None:
        return ordered
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"dataset.conversations must be null or a positive integer, got {n!r}")
    if n > len(ordered):
        raise ConfigError(f"dataset.conversations={n} but the training pool has only {len(ordered)} "
                          f"conversations: lower dataset.conversations, or grow the pool by lowering "
                          f"dataset.eval_fraction / dataset.val_conversations (sizes: conf/dataset/<name>.yaml)")
    return ordered[:n]


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """The options of a conversation-level split (each one a ``dataset.<name>`` config key; their values live in
    ``conf/dataset/<name>.yaml`` alone, so no field has a default)."""

    eval_fraction: float
    split_seed: int
    val_conversations: int
    conversations: int | None
    subset_seed: int

    def __post_init__(self) -> None:
        for name in ("split_seed", "subset_seed", "val_conversations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"dataset.{name} must be an integer >= 0, got {value!r}")

    @classmethod
    def from_config(cls, dataset_cfg: Any) -> SplitPlan:
        """Read the plan from a validated dataset config node (``schemas.dataset.ConversationSplitSchema``: every
        field is there)."""
        return cls(eval_fraction=dataset_cfg.eval_fraction, split_seed=dataset_cfg.split_seed,
                   val_conversations=dataset_cfg.val_conversations, conversations=dataset_cfg.conversations,
                   subset_seed=dataset_cfg.subset_seed)


def conversation_splits(conversation_ids: Iterable[str], plan: SplitPlan) -> dict[str, list[str]]:
    """Conversation ids of each split (``train``, ``validation``, ``test``), as the module docstring says.

    Raises:
        ConfigError: the pool is too small for ``val_conversations`` plus at least one training
            conversation, or for ``plan.conversations``.
    """
    pool, held_out = split_dialogues(conversation_ids, plan.eval_fraction, plan.split_seed)
    if plan.val_conversations >= len(pool):
        raise ConfigError(f"dataset.val_conversations={plan.val_conversations} leaves no training conversation "
                          f"in a pool of {len(pool)}: lower dataset.val_conversations or dataset.eval_fraction")
    by_validation_rank = seeded_order(pool, plan.split_seed, "validation")
    validation = by_validation_rank[:plan.val_conversations]
    train_pool = by_validation_rank[plan.val_conversations:]
    return {"train": subset_conversations(train_pool, plan.conversations, plan.subset_seed),
            "validation": validation, "test": held_out}


def select_split(examples: Sequence[Example], split: str, plan: SplitPlan) -> list[Example]:
    """The Examples of ``split`` (one of :data:`SPLIT_NAMES`; ``all`` = every Example), in input order,
    as copies with ``meta["split"]`` set.

    Raises:
        ConfigError: unknown split name, or the split is empty (names the option that empties it).
        DataFormatError: an Example has no ``meta["conversation_id"]``.
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split {split!r}; use one of {list(SPLIT_NAMES)} (dataset.train_split / "
                          f"dataset.val_split / dataset.eval_split)")
    for example in examples:
        if not isinstance(example.meta.get("conversation_id"), str):
            raise DataFormatError(f"Example {example.id!r} has no meta['conversation_id']: it cannot be split "
                                  f"by conversation")
    if split == "all":
        chosen = None
    else:
        chosen = set(conversation_splits((e.meta["conversation_id"] for e in examples), plan)[split])
        if not chosen:
            option = {"test": "dataset.eval_fraction", "validation": "dataset.val_conversations"}.get(split)
            raise ConfigError(f"split {split!r} is empty with {option}: raise it, or (for validation) set "
                              f"dataset.val_split=null to train without a validation set")
    return [dataclasses.replace(e, history=list(e.history), meta={**e.meta, "split": split}) for e in examples
            if chosen is None or e.meta["conversation_id"] in chosen]
