"""``simulator`` group schemas (``conf/simulator/*.yaml``), chosen by ``simulator.name``: the user simulator U."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarifylab.schemas.fields import backend_node, required


@dataclass
class OracleSimulatorSchema:
    """simulator=oracle: replies with the gold clarification / interpretation."""

    name: str = required()
    interpretation: int = required()


@dataclass
class LLMSimulatorSchema(OracleSimulatorSchema):
    """simulator=llm: an LLM with a goal summary (``env/user_simulator.py``)."""

    backend: Any = backend_node()
    max_new_tokens: int = required()
    summary_max_new_tokens: int = required()
    context_chars: int = required()


SIMULATORS: dict[str, type] = {"oracle": OracleSimulatorSchema, "llm": LLMSimulatorSchema}
