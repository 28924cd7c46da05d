"""Preference pairs: the record (JSONL), their tokenization, batches and the DataModule.

A :class:`PreferencePair` is one prompt ``p`` (system message + history up to the latest user turn)
with a winning and a losing continuation (ACT's ``y_w``, ``y_l``): each a list of messages starting
with an assistant turn — one reply, or a whole simulated trajectory (assistant, user, assistant...).
Each side is tokenized as ``prompt + continuation`` with the loss mask on the continuation's
assistant messages only (the prompt's assistant turns and the continuation's user turns are context),
so both sides are scored against the same prompt.

Batches are :class:`PreferenceBatch` objects that keep the source pairs next to their tensors, so an
on-policy hook (ACT Alg. 2) can read a pair's prompt/meta, replace a side and re-tokenize it with
:func:`tokenize_pair` + :class:`PreferenceCollator`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.data.jsonl import read_records, write_records
from clarifylab.training.chat_tokenize import ConversationTooLongError, report_dropped, tokenize_conversation
from clarifylab.training.collate import RightPadCollator

if TYPE_CHECKING:
    import torch

Message = dict[str, str]
MESSAGE_ROLES = ("system", "user", "assistant")
PAIR_FIELDS = ("id", "prompt", "chosen", "rejected", "meta")


def _check_messages(messages: Any, what: str, continuation: bool) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{what} must be a non-empty list of messages")
    checked = []
    for index, message in enumerate(messages):
        if (not isinstance(message, Mapping) or set(message) != {"role", "content"}
                or message["role"] not in MESSAGE_ROLES or not isinstance(message["content"], str)):
            raise ValueError(f"{what}[{index}] must be {{'role': one of {list(MESSAGE_ROLES)}, 'content': str}}, "
                             f"got {message!r}")
        checked.append({"role": message["role"], "content": message["content"]})
    if continuation:
        if checked[0]["role"] != "assistant" or checked[-1]["role"] != "assistant":
            raise ValueError(f"{what} must start and end with an assistant message")
        if any(message["role"] == "system" for message in checked):
            raise ValueError(f"{what} must not contain a system message")
    elif checked[-1]["role"] != "user":
        raise ValueError(f"{what} must end with the user turn the continuations answer")
    return checked


@dataclass
class PreferencePair:
    """One preference pair ``(p, y_w, y_l)``.

    Attributes:
        id: unique within a pairs file (precomputed reference log-probs are stored per id).
        prompt: system message + history; ends with a user message.
        chosen: the winning continuation ``y_w`` (starts and ends with an assistant message).
        rejected: the losing continuation ``y_l`` (same shape rules).
        meta: JSON-serializable; by convention ``example_id``, ``task``, ``action`` (the gold action of
            the chosen reply, ``clarify`` | ``answer``), ``rejected_action`` and ``goal``.
    """

    id: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"PreferencePair.id must be a non-empty string, got {self.id!r}")
        self.prompt = _check_messages(self.prompt, f"pair {self.id!r} prompt", continuation=False)
        self.chosen = _check_messages(self.chosen, f"pair {self.id!r} chosen", continuation=True)
        self.rejected = _check_messages(self.rejected, f"pair {self.id!r} rejected", continuation=True)
        if not isinstance(self.meta, dict):
            raise TypeError(f"pair {self.id!r} meta must be a JSON object")

    @property
    def gold_action(self) -> Action | None:
        """``meta["action"]`` as an :class:`Action` (``None`` when absent)."""
        value = self.meta.get("action")
        return Action(value) if value is not None else None

    def chosen_messages(self) -> list[Message]:
        """Prompt followed by the winning continuation."""
        return self.prompt + self.chosen

    def rejected_messages(self) -> list[Message]:
        """Prompt followed by the losing continuation."""
        return self.prompt + self.rejected

    def with_sides(self, chosen: list[Message] | None = None, rejected: list[Message] | None = None,
                   **meta: Any) -> PreferencePair:
        """A copy with one or both continuations replaced (and ``meta`` keys updated), e.g. by ACT Alg. 2."""
        return replace(self, chosen=self.chosen if chosen is None else chosen,
                       rejected=self.rejected if rejected is None else rejected, meta={**self.meta, **meta})

    def to_dict(self) -> dict[str, Any]:
        """The JSONL record."""
        return {"id": self.id, "prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> PreferencePair:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the bad field."""
        unknown = sorted(set(record) - set(PAIR_FIELDS))
        missing = sorted(set(PAIR_FIELDS[:4]) - set(record))
        if unknown or missing:
            raise ValueError(f"unknown field(s) {unknown}, missing field(s) {missing}; a pair has {list(PAIR_FIELDS)}")
        return cls(id=record["id"], prompt=record["prompt"], chosen=record["chosen"], rejected=record["rejected"],
                   meta=dict(record.get("meta") or {}))


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[PreferencePair]) -> int:
    """Write pairs to ``path`` as JSONL, atomically; returns the number written."""
    return write_records(path, (pair.to_dict() for pair in pairs))


def read_pairs(path: str | os.PathLike[str]) -> list[PreferencePair]:
    """Read pairs from a JSONL file.

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: a line that is not JSON, not a valid pair, or repeats an earlier id (names file and line).
    """
    hint = ("Build it with `python generate.py task=...` (e.g. ACT contrastive pairs) or point trainer.pairs_path "
            "at it.")
    pairs: list[PreferencePair] = []
    seen: dict[str, int] = {}
    for line_number, pair in read_records(path, PreferencePair.from_dict, "preference pair", hint):
        if pair.id in seen:
            raise DataFormatError(f"{path}:{line_number}: pair id {pair.id!r} already used on line "
                                  f"{seen[pair.id]}; ids must be unique")
        seen[pair.id] = line_number
        pairs.append(pair)
    return pairs


def gold_vs_other_action_pairs(examples: Sequence[Example], rejected_texts: Sequence[str] | Mapping[str, str],
                               instruction: str | None = None) -> list[PreferencePair]:
    """Pairs whose winner is the gold reply ``r_i`` and whose loser is a given reply (ACT Alg. 1's shape,
    with the losing replies supplied instead of generated by ``M``).

    Args:
        examples: the Examples (one pair each, id = example id).
        rejected_texts: the losing reply per example, aligned with ``examples`` or keyed by example id.
        instruction: system-instruction override (``dataset.instruction``).
    """
    if isinstance(rejected_texts, Mapping):
        absent = [example.id for example in examples if example.id not in rejected_texts]
        if absent:
            raise ConfigError(f"no rejected reply for example(s) {absent[:5]}")
        texts = [rejected_texts[example.id] for example in examples]
    else:
        texts = list(rejected_texts)
        if len(texts) != len(examples):
            raise ConfigError(f"{len(texts)} rejected replies for {len(examples)} examples")
    return [
        PreferencePair(
            id=example.id, prompt=prompt_messages(example, instruction),
            chosen=[{"role": "assistant", "content": example.response}],
            rejected=[{"role": "assistant", "content": text}],
            meta={"example_id": example.id, "task": example.task, "action": example.action.value,
                  "rejected_action": example.action.other().value, "goal": list(example.goal)})
        for example, text in zip(examples, texts)
    ]


# ---- tokenization and batches ----


@dataclass
class TokenizedPair:
    """A pair with both sides tokenized (``{"input_ids", "attention_mask", "labels"}`` lists)."""

    pair: PreferencePair
    chosen: dict[str, list[int]]
    rejected: dict[str, list[int]]


def tokenize_pair(pair: PreferencePair, tokenizer: Any, max_length: int, truncation: str = "error",
                  end_of_turn: str | None = None) -> TokenizedPair | None:
    """Tokenize ``prompt + chosen`` and ``prompt + rejected``, labelling only the continuations'
    assistant messages (content + end-of-turn token).

    Returns:
        The :class:`TokenizedPair`, or ``None`` when a side exceeds ``max_length`` and ``truncation="drop"``.

    Raises:
        ConversationTooLongError: a side is too long and ``truncation="error"``.
        DataFormatError: the chat template cannot be masked (see ``chat_tokenize``); names the pair.
    """
    sides = []
    for name, messages in (("chosen", pair.chosen_messages()), ("rejected", pair.rejected_messages())):
        try:
            feature = tokenize_conversation(messages, tokenizer, max_length, loss_on="all_assistant",
                                            truncation=truncation, end_of_turn=end_of_turn,
                                            label_from_message=len(pair.prompt))
        except (ConversationTooLongError, DataFormatError) as error:
            raise type(error)(f"pair {pair.id!r} ({name}): {error}") from error
        if feature is None:
            return None
        sides.append(feature)
    return TokenizedPair(pair, sides[0], sides[1])


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int, truncation: str = "drop",
                   end_of_turn: str | None = None, what: str = "pairs") -> list[TokenizedPair]:
    """:func:`tokenize_pair` over many pairs; dropped pairs (a side too long) are counted and warned about."""
    kept, dropped = [], []
    for pair in pairs:
        tokenized = tokenize_pair(pair, tokenizer, max_length, truncation, end_of_turn)
        (dropped.append(pair.id) if tokenized is None else kept.append(tokenized))
    report_dropped(len(pairs), dropped, what, max_length)
    return kept


@dataclass
class PreferenceBatch:
    """``B`` pairs and their padded tensors.

    Attributes:
        pairs: the source pairs (ids, prompts, continuations, meta), in row order.
        chosen, rejected: int64 ``input_ids`` / ``attention_mask`` / ``labels`` of shape ``(B, T)``; both
            sides share ``T`` when built by :class:`PreferenceCollator`.
        ref_chosen_logps, ref_rejected_logps: ``(B,)`` reference log-probs when already known
            (precomputed for fixed pairs), else ``None`` (the module computes them).
    """

    pairs: list[PreferencePair]
    chosen: dict[str, torch.Tensor]
    rejected: dict[str, torch.Tensor]
    ref_chosen_logps: torch.Tensor | None = None
    ref_rejected_logps: torch.Tensor | None = None

    @property
    def ids(self) -> list[str]:
        return [pair.id for pair in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def to(self, device: Any) -> PreferenceBatch:
        """A copy with every tensor on ``device`` (Lightning calls this to move batches)."""
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        return replace(self, chosen={k: v.to(device) for k, v in self.chosen.items()},
                       rejected={k: v.to(device) for k, v in self.rejected.items()},
                       ref_chosen_logps=move(self.ref_chosen_logps), ref_rejected_logps=move(self.ref_rejected_logps))


class PreferenceCollator:
    """:class:`TokenizedPair` items -> :class:`PreferenceBatch`; both sides right-padded (by
    :class:`RightPadCollator`, in one call) to the same length."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad = RightPadCollator(pad_token_id, pad_to_multiple_of)

    def __call__(self, items: Sequence[TokenizedPair]) -> PreferenceBatch:
        size = len(items)
        both = self.pad([item.chosen for item in items] + [item.rejected for item in items])
        return PreferenceBatch(pairs=[item.pair for item in items],
                               chosen={key: value[:size] for key, value in both.items()},
                               rejected={key: value[size:] for key, value in both.items()})


def pad_token_id_of(tokenizer: Any) -> int:
    """The id to pad with: the tokenizer's pad id, else its eos id (padding is masked by position anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
