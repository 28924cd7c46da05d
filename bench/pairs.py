"""The preference pairs of the preference-step bench (issue 14, item 4): the same pairs, in the same order, on
every side.

Source: PACIFIC (``<data_dir>/pacific/validation.json``, the project's loader) when it is there, else the embedded
synthetic corpus with long tables (6 companies x 7 metrics x 3 years, grid layout: prompts of ~1,000 SmolLM2
tokens, PACIFIC's length). From a seeded shuffle of the decision points, ``n_pairs`` are taken, alternating
clarify and answer examples; each becomes a :class:`PreferencePair` (``gold_vs_other_action_pairs``):

    prompt   = data.chat_format.prompt_messages(example)  (system + table/text + history)
    chosen   = the example's gold reply r_i                (a clarifying question or an answer)
    rejected = another example's gold reply of the other action (a short answer for a clarify example,
               a clarifying question for an answer example), drawn with the same seed

A prompt longer than ``max_prompt_tokens`` (chat template with the assistant header, the tokenizer's count) has its
context cut to the longest character prefix that fits (binary search), as the issue's bench capped PACIFIC prompts
at 1,024 tokens. Everything is deterministic in ``seed``.

Unique tokens of a tokenized pair = prompt + chosen + rejected tokens, the prompt counted once
(:func:`unique_tokens`): what a step must at least run through the model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.training.chat_tokenize import IGNORE_INDEX, render_conversation
from clarifylab.training.packed_pairs import shared_prefix_length
from clarifylab.training.preference_data import PreferencePair, TokenizedPair, gold_vs_other_action_pairs

SOURCES = ("auto", "pacific", "synthetic")
PACIFIC_FILE = "pacific/validation.json"
# The synthetic corpus at its largest table: ~1,000-token prompts with the SmolLM2 tokenizer (PACIFIC: 600-2,400).
SYNTHETIC_DESIGN = {"entities_per_table": 6, "metrics_per_table": 7, "layout": "grid"}
MAX_REJECTED_CHARS = 200  # "a short response of the other action"


def resolve_source(source: str, data_dir: str | Path) -> str:
    """``pacific`` or ``synthetic``: ``auto`` is PACIFIC when ``<data_dir>/pacific/validation.json`` exists.

    Raises:
        ConfigError: unknown source. DataNotFoundError: ``pacific`` asked for but absent.
    """
    if source not in SOURCES:
        raise ConfigError(f"--source={source!r} is not one of {list(SOURCES)}")
    present = (Path(data_dir) / PACIFIC_FILE).is_file()
    if source == "pacific" and not present:
        raise DataNotFoundError(f"--source pacific: {Path(data_dir) / PACIFIC_FILE} is missing; set --data-dir or "
                                "use --source synthetic")
    if source == "auto":
        return "pacific" if present else "synthetic"
    return source


def load_examples(source: str, data_dir: str | Path, seed: int, n_pairs: int = 28) -> list[Example]:
    """Every decision point of the source (``pacific`` | ``synthetic``), in file/corpus order; the synthetic
    corpus gets ``n_pairs // 2 + 2`` tables (4 questions each, half of them clarify: room for ``n_pairs`` pairs;
    the default, 16 tables = 64 examples)."""
    if source == "pacific":
        from clarifylab.data.loaders.pacific import load_pacific

        return load_pacific(Path(data_dir) / PACIFIC_FILE)
    from clarifylab.data.synthetic_tables import build_synthetic_corpus

    tables = {"train": n_pairs // 2 + 2, "validation": 0, "test": 0}
    corpus = build_synthetic_corpus(seed=seed, tables_per_split=tables, **SYNTHETIC_DESIGN)
    return corpus["train"]


def prompt_token_count(messages: Sequence[dict[str, str]], tokenizer: Any) -> int:
    """Tokens of ``messages`` under the chat template, assistant header included (what precedes the reply)."""
    text = render_conversation(messages, tokenizer, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def cap_prompt(example: Example, tokenizer: Any, max_prompt_tokens: int) -> Example | None:
    """``example`` whose prompt fits ``max_prompt_tokens``: unchanged, or its context cut to the longest character
    prefix that fits (binary search over the prefix length); ``None`` when even no context is too long."""
    if prompt_token_count(prompt_messages(example), tokenizer) <= max_prompt_tokens:
        return example
    if prompt_token_count(prompt_messages(replace(example, context="")), tokenizer) > max_prompt_tokens:
        return None
    low, high = 0, len(example.context)  # invariant: a prefix of `low` chars fits, one of `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        fits = prompt_token_count(prompt_messages(replace(example, context=example.context[:middle])),
                                  tokenizer) <= max_prompt_tokens
        low, high = (middle, high) if fits else (low, middle)
    return replace(example, context=example.context[:low], meta={**example.meta, "bench_context_chars": low})


def build_pairs(examples: Sequence[Example], tokenizer: Any, n_pairs: int, seed: int,
                max_prompt_tokens: int) -> list[PreferencePair]:
    """``n_pairs`` pairs (rules in the module docstring), clarify and answer examples alternating.

    Raises:
        ConfigError: fewer than ``n_pairs`` usable examples, or no short reply of an action to reject with.
    """
    if n_pairs < 1:
        raise ConfigError(f"--pairs={n_pairs} must be >= 1")
    rng = random.Random(f"bench-preference/{seed}")
    order = list(examples)
    rng.shuffle(order)
    by_action = {action: [e for e in order if e.action is action] for action in Action}
    short = {action: [e.response for e in group if 0 < len(e.response) <= MAX_REJECTED_CHARS]
             for action, group in by_action.items()}
    for action, replies in short.items():
        if not replies:
            raise ConfigError(f"the source has no short {action.value} reply to use as a rejected side")
    queues = {action: iter(group) for action, group in by_action.items()}
    chosen: list[Example] = []
    action = Action.CLARIFY
    exhausted: set[Action] = set()
    while len(chosen) < n_pairs and len(exhausted) < len(queues):
        example = next(queues[action], None)
        if example is None:
            exhausted.add(action)
        else:
            capped = cap_prompt(example, tokenizer, max_prompt_tokens)
            if capped is not None:
                chosen.append(capped)
        if action.other() not in exhausted:
            action = action.other()
    if len(chosen) < n_pairs:
        raise ConfigError(f"only {len(chosen)} examples fit --max-prompt-tokens={max_prompt_tokens}; "
                          f"ask for fewer --pairs")
    rejected = []
    for example in chosen:
        pool = [text for text in short[example.action.other()] if text != example.response]
        rejected.append(rng.choice(pool))
    return gold_vs_other_action_pairs(chosen, rejected)


def prompt_length(tokenized: TokenizedPair) -> int:
    """Tokens before the first scored token: the prompt both sides share.

    Raises:
        ValueError: the two sides do not share those tokens (they would not be one prompt).
    """
    chosen, rejected = tokenized.chosen, tokenized.rejected
    starts = [next((i for i, label in enumerate(side["labels"]) if label != IGNORE_INDEX), None)
              for side in (chosen, rejected)]
    if None in starts:
        raise ValueError(f"pair {tokenized.pair.id!r}: a side has no scored token")
    prompt = shared_prefix_length(chosen["input_ids"], chosen["labels"], rejected["input_ids"], rejected["labels"])
    if prompt < min(starts):
        raise ValueError(f"pair {tokenized.pair.id!r}: the sides differ before the first scored token")
    return prompt


def unique_tokens(tokenized: TokenizedPair) -> int:
    """``P + C + R``: the shared prompt once plus both continuations (``len(chosen) + len(rejected) - P``)."""
    prompt = prompt_length(tokenized)
    return len(tokenized.chosen["input_ids"]) + len(tokenized.rejected["input_ids"]) - prompt


def step_schedule(n_pairs: int, batch_size: int, steps: int) -> list[list[int]]:
    """Pair indices of each optimizer step: consecutive batches of ``batch_size`` in pair order, wrapping around
    (epoch after epoch, no shuffling), so every side sees the same batches in the same order.

    >>> step_schedule(3, 2, 3)
    [[0, 1], [2, 0], [1, 2]]
    """
    if n_pairs < 1 or batch_size < 1 or steps < 1:
        raise ConfigError(f"--pairs, --batch-size and --steps must be >= 1, got {n_pairs}, {batch_size}, {steps}")
    flat = [index % n_pairs for index in range(steps * batch_size)]
    return [flat[step * batch_size:(step + 1) * batch_size] for step in range(steps)]


def pair_statistics(tokenized: Sequence[TokenizedPair]) -> dict[str, Any]:
    """Prompt and reply token counts of the tokenized pairs (mean/min/max), for the report."""
    prompts = [prompt_length(item) for item in tokenized]
    replies = [len(side["input_ids"]) - prompt for item, prompt in zip(tokenized, prompts)
               for side in (item.chosen, item.rejected)]
    return {"pairs": len(tokenized), "prompt_tokens_mean": sum(prompts) / len(prompts),
            "prompt_tokens_min": min(prompts), "prompt_tokens_max": max(prompts),
            "reply_tokens_min": min(replies), "reply_tokens_max": max(replies),
            "unique_tokens": sum(unique_tokens(item) for item in tokenized)}
