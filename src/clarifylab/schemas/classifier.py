"""``classifier`` group schemas (``conf/classifier/*.yaml``): the action classifier A.

A node with ``_target_`` (e.g. ``classifier=heuristic``) is checked against its target's signature; a node
with ``name: llm_fewshot`` against :class:`LLMFewShotClassifierSchema`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from clarifylab.schemas.fields import backend_node, required


@dataclass
class LLMFewShotClassifierSchema:
    """classifier=llm_fewshot: a few-shot LLM labels a response clarify / answer."""

    name: str = required()
    backend: Any = backend_node()
    k: int = required()
    seed: int = required()
    pool_split: Optional[str] = required()
    max_new_tokens: int = required()
    context_chars: int = required()


CLASSIFIERS: dict[str, type] = {"llm_fewshot": LLMFewShotClassifierSchema}
