"""Field helpers shared by the schema dataclasses: a required field, optionally restricted to named choices.

Every schema field is required (``MISSING``): its value lives in the group's YAML (``conf/<group>/*.yaml``),
never in the dataclass, so a config value has exactly one source.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from omegaconf import MISSING


def required() -> Any:
    """A field the group's YAML must set (any value of the annotated type)."""
    return field(default=MISSING)


def one_of(*choices: Any) -> Any:
    """A field the group's YAML must set to one of ``choices`` (checked after the type check)."""
    return field(default=MISSING, metadata={"choices": choices})


def backend_node() -> Any:
    """A required ``backend:`` node (``kind: transformers | openai``), checked against ``schemas/backend.py``."""
    return field(default=MISSING, metadata={"backend": True})
