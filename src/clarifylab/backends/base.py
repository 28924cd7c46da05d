"""The chat-backend interface shared by every role that calls an LLM (policy, teacher, user
simulator, action classifier, judge).

A backend maps a batch of conversations to one assistant reply each. Implementations: the local
:class:`~clarifylab.backends.transformers_backend.TransformersBackend`; later an OpenAI-compatible
HTTP backend and a caching wrapper keyed by (``model_id``, messages, :class:`SamplingParams`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": str}``."""


@dataclass(frozen=True)
class SamplingParams:
    """How to decode one reply per conversation.

    Attributes:
        max_new_tokens: upper bound on generated tokens per reply (the end-of-turn token stops earlier).
        temperature: 0 means greedy decoding; > 0 samples from softmax(logits / temperature).
        top_p: nucleus-sampling mass (only used when sampling).
        seed: seeds the sampler so a sampled batch is reproducible; ignored when greedy.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (a cache key component and a log record)."""
        return asdict(self)


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that answers a batch of conversations.

    Attributes:
        name: short kind of backend (``"transformers"``, ``"openai"``, ...), for logs.
        model_id: identifies the model behind it (a path or hub id); part of cache keys.
    """

    name: str
    model_id: str

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """Return one assistant reply (stripped text, without the prompt) per conversation in ``batch``,
        in order."""
        ...
