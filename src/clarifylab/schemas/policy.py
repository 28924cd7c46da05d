"""``policy`` group schema (``conf/policy/*.yaml``, evaluate.py): how the evaluated policy is called.

``kind: openai`` is a backend node (``schemas/backend.py``); ``kind: transformers`` is the local student or
``policy_dir`` model, described by :class:`LocalPolicySchema`.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.schemas.fields import required


@dataclass
class LocalPolicySchema:
    """policy=student: a local model (``evaluation/components.py: build_policy_backend``)."""

    kind: str = required()
    batch_size: int = required()
    progress: bool = required()
    cache: bool = required()
    namespace: str = required()
