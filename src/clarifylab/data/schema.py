"""The shared data model (SPEC §2).

One decision point of a conversation (ACT's turn state t_i) is an :class:`Example`. Every loader maps
its native format to Examples; prompts, trainers, simulators and metrics speak only this model.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Action(str, enum.Enum):
    """The dialogue action of an assistant turn (ACT's a_i)."""

    CLARIFY = "clarify"
    ANSWER = "answer"

    def other(self) -> Action:
        """The contrasting action (ACT Alg. 1 writes losing responses with it)."""
        return Action.ANSWER if self is Action.CLARIFY else Action.CLARIFY


ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Turn:
    """One message of the conversation history."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Turn.role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ValueError(f"Turn.content must be a string, got {type(self.content).__name__}")


@dataclass(frozen=True)
class Clarification:
    """One interpretation of an ambiguous request: the user's reply to the clarifying question and
    the final answer that resolves the trajectory under that reply (Abg-CoQA has several)."""

    reply: str
    answer: str


@dataclass
class Example:
    """One assistant decision point.

    Attributes:
        id: unique within a task.
        task: dataset name (``synthetic_tables``, ``pacific``, ...).
        context: linearized grounding (table + passage, DB schema, story).
        history: user/assistant turns up to and including the latest user turn.
        response: the gold assistant reply r_i.
        action: the gold action a_i.
        goal: gold final answer(s) g_i that resolve the trajectory.
        clarifications: for a clarify example, one (reply, answer) per interpretation.
        meta: free-form, JSON-serializable (split, db_id, scale, answer_type, ...).
    """

    id: str
    task: str
    context: str
    history: list[Turn]
    response: str
    action: Action
    goal: list[str]
    clarifications: list[Clarification] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.action = Action(self.action)
        if not self.history or self.history[-1].role != "user":
            raise ValueError(f"Example {self.id!r}: history must end with a user turn")
        if self.action is Action.CLARIFY and not self.clarifications:
            raise ValueError(f"Example {self.id!r}: a clarify example needs at least one clarification")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serializable dict (the JSONL record)."""
        record = asdict(self)
        record["action"] = self.action.value
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Example:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``ValueError``/``TypeError`` on bad records."""
        unknown = set(record) - EXAMPLE_FIELDS
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        missing = REQUIRED_FIELDS - set(record)
        if missing:
            raise ValueError(f"missing field(s) {sorted(missing)}")
        goal = record["goal"]
        if not isinstance(goal, list) or not all(isinstance(g, str) for g in goal):
            raise TypeError("field 'goal' must be a list of strings")
        return cls(
            id=str(record["id"]),
            task=str(record["task"]),
            context=str(record["context"]),
            history=[Turn(**turn) for turn in record["history"]],
            response=str(record["response"]),
            action=Action(record["action"]),
            goal=list(goal),
            clarifications=[Clarification(**c) for c in record.get("clarifications", [])],
            meta=dict(record.get("meta", {})),
        )


EXAMPLE_FIELDS = {"id", "task", "context", "history", "response", "action", "goal", "clarifications", "meta"}
REQUIRED_FIELDS = {"id", "task", "context", "history", "response", "action", "goal"}
