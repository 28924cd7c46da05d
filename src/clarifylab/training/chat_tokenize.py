"""Chat conversation -> token ids with an assistant-only loss mask, for any fast HF tokenizer with a
chat template.

Why not ``apply_chat_template(return_assistant_tokens_mask=True)``: it needs ``{% generation %}``
markers in the template, and most released templates (SmolLM2, Zephyr, Mistral, Llama 3) have none.
Instead the whole conversation is rendered once to text, each assistant message is located in that
text by rendering the conversation prefix that precedes it (with the generation prompt) and
searching the message content from there, and the text is tokenized once with character offsets.
A token is labelled when its character span overlaps an assistant span
``[content start, content end + end-of-turn text)``: the content and the end-of-turn token (e.g.
``<|im_end|>``) are learned; the template text around them (role headers, the newline after the
end-of-turn token), system and user messages are not.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from clarifylab.errors import ClarifyLabError, ConfigError, DataFormatError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of tokens outside the loss mask (PyTorch's ``cross_entropy`` ignore index)."""

LOSS_ON = ("all_assistant", "last_assistant")
TRUNCATION = ("error", "drop")

# End-of-turn markers of common chat templates, tried in this order after the tokenizer-specific
# choice (``end_of_turn`` argument); the tokenizer's EOS is the last resort (Zephyr/Mistral: ``</s>``).
KNOWN_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")

Message = dict[str, str]


class ConversationTooLongError(ClarifyLabError, ValueError):
    """A conversation needs more tokens than ``trainer.max_length`` allows."""


def render_conversation(messages: Sequence[Message], tokenizer: Any, add_generation_prompt: bool = False) -> str:
    """The chat-template text of ``messages`` (no tokenization)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)!r} has no chat template; "
            "use a chat/instruct model or set tokenizer.chat_template")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _end_of_turn_candidates(tokenizer: Any, end_of_turn: str | None) -> list[str]:
    if end_of_turn is not None:
        return [end_of_turn]
    candidates = list(KNOWN_END_OF_TURN)
    if tokenizer.eos_token and tokenizer.eos_token not in candidates:
        candidates.append(tokenizer.eos_token)
    return candidates


def assistant_spans(
    messages: Sequence[Message],
    tokenizer: Any,
    loss_on: str = "all_assistant",
    end_of_turn: str | None = None,
    label_from_message: int = 0,
) -> tuple[str, list[tuple[int, int]]]:
    """Render ``messages`` and find the character spans the loss covers.

    Args:
        messages: ``[{"role", "content"}, ...]`` with at least one assistant message.
        tokenizer: a tokenizer with a chat template.
        loss_on: ``all_assistant`` (every assistant message) or ``last_assistant`` (the final one only).
        end_of_turn: the text that closes an assistant turn in this template (``<|im_end|>``);
            ``None`` tries ``KNOWN_END_OF_TURN`` and then ``tokenizer.eos_token``.
        label_from_message: only assistant messages at this index or later are selected; earlier ones
            are context (a preference pair's prompt may hold assistant turns that must not be scored).

    Returns:
        ``(text, spans)``: the rendered conversation and, per selected assistant message in order,
        ``(start, end)`` character offsets into ``text`` from the first content character up to
        and including the end-of-turn text.

    Raises:
        ConfigError: bad ``loss_on``; no chat template.
        DataFormatError: no assistant message; a template whose rendering of a prefix is not a prefix of
            the full rendering; content or end-of-turn text not found where expected.
    """
    if loss_on not in LOSS_ON:
        raise ConfigError(f"trainer.loss_on={loss_on!r} is not one of {list(LOSS_ON)}")
    assistant_indices = [i for i, message in enumerate(messages)
                         if message["role"] == "assistant" and i >= label_from_message]
    if not assistant_indices:
        where = f" at or after message {label_from_message}" if label_from_message else ""
        raise DataFormatError(f"conversation has no assistant message{where}: nothing to train on")
    if loss_on == "last_assistant":
        assistant_indices = assistant_indices[-1:]

    text = render_conversation(messages, tokenizer)
    candidates = _end_of_turn_candidates(tokenizer, end_of_turn)
    spans: list[tuple[int, int]] = []
    for index in assistant_indices:
        prefix = render_conversation(messages[:index], tokenizer, add_generation_prompt=True)
        if not text.startswith(prefix):
            raise DataFormatError(
                f"the chat template renders the conversation up to message {index} differently from the full "
                "conversation (it may rewrite earlier turns), so assistant tokens cannot be located; use a "
                "prefix-stable template (set tokenizer.chat_template)")
        content = messages[index]["content"]
        needle = content if content in text[len(prefix):] else content.strip()  # templates may `| trim`
        start = text.find(needle, len(prefix))
        if start < 0:
            raise DataFormatError(
                f"assistant message {index} ({content[:40]!r}...) is not in the rendered conversation; the "
                "chat template changes message content")
        content_end = start + len(needle)
        tail = text[content_end:]
        gap = len(tail) - len(tail.lstrip())  # some templates put a space before the end-of-turn token
        marker = next((c for c in candidates if tail.startswith(c, gap)), None)
        if marker is None:
            raise DataFormatError(
                f"assistant message {index} is not followed by an end-of-turn marker (tried {candidates}); "
                f"the template continues with {tail[:30]!r}: set the end-of-turn text explicitly "
                "(trainer.end_of_turn)")
        spans.append((start, content_end + gap + len(marker)))
    return text, spans


def label_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens the loss covers.

    Args:
        offsets: per token, its ``(start, end)`` character offsets in the rendered text.
        spans: character spans to learn, from :func:`assistant_spans`.

    Returns:
        One bool per token: True when the token's characters overlap a span (zero-width tokens never do).
    """
    mask = []
    for token_start, token_end in offsets:
        mask.append(token_end > token_start and any(token_start < end and token_end > start for start, end in spans))
    return mask


def tokenize_conversation(
    messages: Sequence[Message],
    tokenizer: Any,
    max_length: int,
    loss_on: str = "all_assistant",
    truncation: str = "error",
    end_of_turn: str | None = None,
    label_from_message: int = 0,
) -> dict[str, list[int]] | None:
    """Token ids, attention mask and labels of one conversation.

    Args:
        messages: the conversation (system/user/assistant messages).
        tokenizer: a *fast* HF tokenizer (character offsets are needed) with a chat template.
        max_length: maximum number of tokens.
        loss_on: ``all_assistant`` | ``last_assistant`` (see :func:`assistant_spans`).
        truncation: what to do when the conversation is longer than ``max_length``: ``error`` raises
            :class:`ConversationTooLongError`; ``drop`` returns ``None``. It is never cut.
        end_of_turn: the end-of-turn text (see :func:`assistant_spans`).
        label_from_message: label only assistant messages from this index on (see :func:`assistant_spans`).

    Returns:
        ``{"input_ids", "attention_mask", "labels"}``, lists of equal length ``L <= max_length``;
        ``labels[i] = input_ids[i]`` inside the loss mask, ``IGNORE_INDEX`` elsewhere (labels are not
        shifted: the model's loss shifts them). ``None`` when dropped.
    """
    if truncation not in TRUNCATION:
        raise ConfigError(f"trainer.truncation={truncation!r} is not one of {list(TRUNCATION)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} is not a fast tokenizer; assistant-token "
            "masking needs character offsets (load it with use_fast=True)")
    text, spans = assistant_spans(messages, tokenizer, loss_on=loss_on, end_of_turn=end_of_turn,
                                  label_from_message=label_from_message)
    # The template text already holds every special token (BOS included), so add none.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    if len(input_ids) > max_length:
        if truncation == "drop":
            return None
        raise ConversationTooLongError(
            f"conversation has {len(input_ids)} tokens > trainer.max_length={max_length}; raise "
            "trainer.max_length or set trainer.truncation=drop to skip such conversations")
    mask = label_mask(encoded["offset_mapping"], spans)
    labels = [token if keep else IGNORE_INDEX for token, keep in zip(input_ids, mask)]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def tokenize_conversations(
    conversations: Sequence[Sequence[Message]],
    tokenizer: Any,
    max_length: int,
    loss_on: str = "all_assistant",
    truncation: str = "error",
    end_of_turn: str | None = None,
    names: Sequence[str] | None = None,
    what: str = "conversations",
) -> list[dict[str, list[int]]]:
    """:func:`tokenize_conversation` over many conversations; dropped ones are counted and warned about.

    Args:
        names: per conversation, an id for error messages (e.g. the Example id).
        what: what the conversations are, for the warning (``"training conversations"``).

    Returns:
        The kept conversations' features, in input order.
    """
    features: list[dict[str, list[int]]] = []
    dropped: list[str] = []
    for position, messages in enumerate(conversations):
        name = names[position] if names is not None else f"#{position}"
        try:
            feature = tokenize_conversation(messages, tokenizer, max_length, loss_on, truncation, end_of_turn)
        except (ConversationTooLongError, DataFormatError) as error:
            raise type(error)(f"{what} {name}: {error}") from error
        if feature is None:
            dropped.append(name)
        else:
            features.append(feature)
    report_dropped(len(conversations), dropped, what, max_length)
    return features


def report_dropped(total: int, dropped: Sequence[str], what: str, max_length: int) -> None:
    """Warn (log + ``UserWarning``) about items dropped for exceeding ``max_length``; raise when all were.

    Args:
        total: how many items there were; dropped: the ids of those dropped; what: their name ("pairs").
    """
    if total and len(dropped) == total:
        raise ConversationTooLongError(f"every one of the {total} {what} is longer than "
                                       f"trainer.max_length={max_length} tokens: raise trainer.max_length")
    if dropped:
        message = (f"dropped {len(dropped)} of {total} {what} longer than trainer.max_length="
                   f"{max_length} tokens (first: {list(dropped[:5])}); raise trainer.max_length to keep them")
        log.warning(message)
        warnings.warn(message, stacklevel=3)
