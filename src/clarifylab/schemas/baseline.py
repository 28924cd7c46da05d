"""``baseline`` group schema (``conf/baseline/*.yaml``, evaluate.py): the in-context prompting baseline (ACT App. E)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from clarifylab.schemas.fields import required


@dataclass
class BaselineSchema:
    """``style: null`` (baseline=none) evaluates the policy as it is; the style's own check is ``BaselineSpec``."""

    style: Optional[str] = required()
    conversations: Optional[int] = required()
    seed: int = required()
    pool_split: Optional[str] = required()
    max_context_chars: int = required()
