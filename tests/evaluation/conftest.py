"""Shared helpers of the evaluation tests: a scripted policy behind the ChatBackend interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from clarifylab.backends.base import Message, SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Example

Decide = Callable[[Example, list[Message]], str]


class ScriptedPolicy:
    """A ChatBackend that recognises each conversation's example by its prompt and replies
    ``decide(example, turns)``, where ``turns`` are the messages after the prompt.

    Attributes:
        calls: the batches it received, in order.
        usage: ``calls`` / ``prompt_tokens`` / ``completion_tokens`` counters (words), as real backends keep.
    """

    name = "scripted"
    model_id = "scripted-policy"

    def __init__(self, examples: Sequence[Example], decide: Decide, instruction: str | None = None) -> None:
        self.decide = decide
        self.prompts = {self.key(prompt_messages(e, instruction)): e for e in examples}
        self.calls: list[list[list[Message]]] = []
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}

    @staticmethod
    def key(messages: Sequence[Message]) -> tuple[str, ...]:
        return tuple(f"{m['role']}:{m['content']}" for m in messages)

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        self.calls.append([list(c) for c in batch])
        self.usage["calls"] += 1
        replies = []
        for conversation in batch:
            for length in range(len(conversation), 0, -1):
                example = self.prompts.get(self.key(conversation[:length]))
                if example is not None:
                    replies.append(self.decide(example, list(conversation[length:])))
                    break
            else:
                raise AssertionError(f"scripted policy: unknown conversation {conversation[:2]}")
        self.usage["prompt_tokens"] += sum(len(m["content"].split()) for c in batch for m in c)
        self.usage["completion_tokens"] += sum(len(r.split()) for r in replies)
        return replies


@pytest.fixture()
def scripted_policy() -> type[ScriptedPolicy]:
    return ScriptedPolicy


@pytest.fixture(scope="session")
def synthetic_examples() -> list[Example]:
    """The test split of a small in-memory synthetic corpus (8 examples, 4 clarify)."""
    from clarifylab.data.synthetic_tables import build_synthetic_corpus

    return build_synthetic_corpus(seed=0, tables_per_split={"train": 3, "validation": 1, "test": 2})["test"]


@pytest.fixture(scope="session")
def synthetic_pool() -> list[Example]:
    """The train split of the same corpus (12 examples): a pool of demonstrations."""
    from clarifylab.data.synthetic_tables import build_synthetic_corpus

    return build_synthetic_corpus(seed=0, tables_per_split={"train": 3, "validation": 1, "test": 2})["train"]
