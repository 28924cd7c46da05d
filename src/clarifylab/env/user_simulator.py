"""User simulators U: answer the policy's clarifying questions during trajectory rollout (ACT §3.1, App. H).

- :class:`OracleUserSimulator` replies with the gold clarification stored in the data (no LLM).
- :class:`LLMUserSimulator` follows ACT's two stages: (a) summarize the user's information goal from
  the gold trajectory once per (example, interpretation); (b) answer the assistant's latest question
  from that summary, in the user's voice. For ``ambigsql`` it conditions on the target SQL instead of a
  summary. A reply that leaks the gold answer verbatim is redacted.

A request carries the dialogue as the policy saw it *without* the system message: the example's
history followed by the simulated turns (assistant, user, ..., assistant), ending with the question.

A simulator is meaningful only if it answers with the information the policy lacks; a reply that copies
the question, an earlier turn or the simulator's own goal text or prompt (:func:`own_texts`) is flagged by
:mod:`clarifylab.env.degenerate_replies` during rollout. The oracle is the reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.chat_format import response_messages
from clarifylab.data.schema import Action, Example
from clarifylab.errors import DataFormatError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorRequest:
    """One user turn to simulate.

    Attributes:
        example: the decision point the trajectory started from.
        interpretation: index of the gold clarification (interpretation) the user has in mind.
        conversation: history + simulated turns, no system message; the last message is the
            assistant's clarifying question.
    """

    example: Example
    interpretation: int
    conversation: list[Message] = field(default_factory=list)


@runtime_checkable
class UserSimulator(Protocol):
    """Answers a batch of clarifying questions, one user reply per request, in order."""

    def reply(self, requests: Sequence[SimulatorRequest]) -> list[str]:
        """One user reply (plain text) per request."""
        ...


def own_texts(simulator: object, request: SimulatorRequest) -> dict[str, list[str]]:
    """The texts of the simulator's own that a degenerate reply to ``request`` may copy, by source
    (``{"goal": [...], "instructions": [...]}``, :mod:`clarifylab.env.degenerate_replies`): the
    simulator's ``own_texts(request)``, or none for a simulator without that method (the oracle)."""
    method = getattr(simulator, "own_texts", None)
    return method(request) if callable(method) else {}


def instruction_lines(template: str) -> list[str]:
    """The fixed lines of a prompt template (no ``{placeholder}``), without list dashes."""
    return [line.strip().lstrip("- ").strip() for line in template.splitlines() if line.strip() and "{" not in line]


def gold_answer(example: Example, interpretation: int) -> str:
    """The final answer that resolves ``example`` under ``interpretation``.

    The clarification's answer when the example has one for that index, else ``goal[interpretation]``
    (or ``goal[0]``), else ``""``.
    """
    if 0 <= interpretation < len(example.clarifications):
        return example.clarifications[interpretation].answer
    if 0 <= interpretation < len(example.goal):
        return example.goal[interpretation]
    return example.goal[0] if example.goal else ""


def check_interpretation(example: Example, interpretation: int) -> None:
    """Fail loudly when ``interpretation`` does not index one of a clarify example's clarifications."""
    n = len(example.clarifications)
    if interpretation < 0 or (example.action is Action.CLARIFY and interpretation >= n):
        raise DataFormatError(
            f"example {example.id!r} ({example.task}) has {n} clarification(s); interpretation {interpretation} "
            f"does not exist (use 0..{max(n - 1, 0)})")


def simulated_turns(request: SimulatorRequest) -> list[Message]:
    """The turns after the example's history (a leading system message is tolerated and dropped)."""
    conversation = list(request.conversation)
    if conversation and conversation[0].get("role") == "system":
        conversation = conversation[1:]
    n_history = len(request.example.history)
    if len(conversation) <= n_history or conversation[-1].get("role") != "assistant":
        raise ValueError(
            f"simulator request for example {request.example.id!r}: the conversation must be the history "
            f"({n_history} turns) followed by the simulated turns ending with the assistant's question; got "
            f"{len(conversation)} messages ending with {conversation[-1].get('role') if conversation else None!r}")
    return conversation[n_history:]


def transcript(messages: Sequence[Message]) -> str:
    """``User: ...`` / ``Assistant: ...`` lines (system messages skipped)."""
    names = {"user": "User", "assistant": "Assistant"}
    return "\n".join(f"{names[m['role']]}: {m['content']}" for m in messages if m["role"] in names)


def truncate(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters plus a visible marker when it was longer."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rstrip() + " [... truncated]"


# ----------------------------------------------------------------------------------------------------------------------
# Oracle

# Why fixed texts: the oracle knows only the one gold reply per interpretation; anything it says beyond
# that must add no information, so a policy cannot profit from asking again or asking needlessly.
REPEAT_REPLY = "I have already told you what I mean. Please answer my question now."
NO_CLARIFICATION_REPLY = "I have nothing to add; my question is as I asked it. Please answer it."


class OracleUserSimulator:
    """Replies with ``example.clarifications[interpretation].reply`` (the gold user reply).

    Stateless: the number of assistant turns after the history tells which question this is. The
    first clarifying question gets the gold reply; a second or later one gets :data:`REPEAT_REPLY`;
    a question on an example without a clarification for that interpretation (a gold-answer example)
    gets :data:`NO_CLARIFICATION_REPLY`. Neither fixed reply adds information.
    """

    name = "oracle"

    def reply(self, requests: Sequence[SimulatorRequest]) -> list[str]:
        """One user reply per request, in order."""
        replies = []
        for request in requests:
            example, interpretation = request.example, request.interpretation
            check_interpretation(example, interpretation)
            questions_asked = sum(m["role"] == "assistant" for m in simulated_turns(request))
            if interpretation >= len(example.clarifications):
                replies.append(NO_CLARIFICATION_REPLY)
            elif questions_asked <= 1:
                replies.append(example.clarifications[interpretation].reply)
            else:
                replies.append(REPEAT_REPLY)
        return replies


# ----------------------------------------------------------------------------------------------------------------------
# LLM simulator: prompts

SUMMARY_SYSTEM = (
    "You read a finished conversation between a user and an assistant and describe, briefly and precisely, "
    "what information the user was looking for."
)
"""Stage (a) role. Kept separate from the reply role so the summarizer never speaks as the user."""

SUMMARY_TEMPLATE = """Data the conversation is about:
{context}

The conversation, up to the moment the user's request was resolved:
{transcript}

The answer the user was looking for: {goal}

In one or two sentences starting with "The user wants to know", describe exactly what the user wants to \
find out, including every detail they had in mind (for example which item, measure, period or meaning \
they meant). Do not state the answer or any number from it."""
"""Stage (a) prompt. Why the gold trajectory and answer: they fix the intended interpretation, so the summary
names the details a clarifying question could ask about; why no answer in the summary: the reply stage sees
only the summary, which keeps the simulated user from handing the policy the result (ACT App. H)."""

REPLY_SYSTEM = """You play the user in a conversation with an AI assistant. Write only the user's next message.

What you want to know: {summary}

Rules:
- Answer the assistant's latest question in one short sentence, using only the details in what you want to know.
- You are the one asking: never give the final answer or any result, and never do the assistant's work.
- If the question does not fit what you want, say briefly what you do mean.
- Do not ask new questions and do not thank the assistant."""
"""Stage (b) role. Why a summary rather than the raw gold reply: the simulated user can answer questions
phrased differently from the gold one (ACT §3.1, "more flexibility")."""

SQL_REPLY_SYSTEM = """You play a user who asks an AI assistant to retrieve information from a SQL database. \
Write only the user's next message.

The query that returns exactly what you want is:
```sql
{sql}
```

Rules:
- Answer the assistant's latest question in one short sentence of plain language, as a user who does not know \
SQL would: say which information, which rows or which presentation of the results you want.
- Never write SQL, table or query code, and never give the query's result.
- Do not ask new questions and do not thank the assistant."""
"""Stage (b) role for AmbigSQL. Why condition on SQL: the target query is the user's exact goal, so no
summary stage is needed (ACT App. H, Table A27)."""

REPLY_TEMPLATE = """Data you are asking about:
{context}

The conversation so far:
{transcript}

Write the user's next message."""
"""Stage (b) prompt: the (truncated) grounding and the dialogue as a transcript. A transcript, not
role-flipped chat messages, so any chat template renders it the same way."""

REPLY_PARAMS = SamplingParams(max_new_tokens=64)
SUMMARY_PARAMS = SamplingParams(max_new_tokens=96)
REDACTION = "[...]"
FALLBACK_REPLY = "I am not sure how to put it; please answer my original question."
_SPEAKER_PREFIX = re.compile(r"^\s*(?:the\s+)?user\s*:\s*", re.IGNORECASE)


def clean_reply(text: str) -> str:
    """The user's message from a raw generation: its first non-empty line (a clarification reply is one
    short sentence; later lines are where models go on with another speaker's turn or dump data), without
    a leading ``User:`` and surrounding quotes."""
    lines = [line for line in text.splitlines() if line.strip()]
    first = _SPEAKER_PREFIX.sub("", lines[0]) if lines else ""
    return first.strip().strip('"').strip()


def redact_answer(reply: str, answer: str, conversation_text: str) -> tuple[str, bool]:
    """Replace verbatim occurrences of the gold ``answer`` in ``reply`` by :data:`REDACTION`.

    Rule (kept simple on purpose): only answers of >= 2 characters (a one-digit answer matches too much)
    that are not already in the dialogue so far (repeating what was said reveals nothing); matching is
    case-insensitive and whole-token (``43.8`` does not match inside ``143.8``).

    Returns:
        (reply, whether something was redacted).
    """
    answer = answer.strip()
    if len(answer) < 2 or answer.lower() in conversation_text.lower():
        return reply, False
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)", re.IGNORECASE)
    redacted, count = pattern.subn(REDACTION, reply)
    return redacted, count > 0


def is_sql_task(example: Example) -> bool:
    """True for tasks whose goal is a SQL query (the user simulator conditions on it)."""
    return example.task == "ambigsql"


class LLMUserSimulator:
    """ACT's LLM user simulator (two stages; see the module docstring).

    Args:
        backend: the LLM that plays the summarizer and the user.
        params: decoding of user replies.
        summary_params: decoding of goal summaries.
        context_chars: the grounding shown to either stage is cut to this many characters.

    Attributes:
        summaries: ``(example.id, interpretation) -> summary`` (kept for the simulator's lifetime).
        redactions: replies in which a leaked gold answer was redacted.
        fallbacks: empty generations replaced by :data:`FALLBACK_REPLY` or a built-in summary.
    """

    name = "llm"

    def __init__(self, backend: ChatBackend, params: SamplingParams = REPLY_PARAMS,
                 summary_params: SamplingParams = SUMMARY_PARAMS, context_chars: int = 1500) -> None:
        self.backend = backend
        self.params = params
        self.summary_params = summary_params
        self.context_chars = context_chars
        self.summaries: dict[tuple[str, int], str] = {}
        self.redactions = 0
        self.fallbacks = 0

    # -- stage (a) ------------------------------------------------------------------------------------------------
    def summary_messages(self, example: Example, interpretation: int) -> list[Message]:
        """Prompt that summarizes the user's goal from the gold trajectory under ``interpretation``."""
        gold = [{"role": t.role, "content": t.content} for t in example.history]
        gold += response_messages(example, interpretation)
        content = SUMMARY_TEMPLATE.format(context=truncate(example.context, self.context_chars) or "(none)",
                                          transcript=transcript(gold), goal=gold_answer(example, interpretation))
        return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": content}]

    def summarize(self, requests: Sequence[SimulatorRequest]) -> None:
        """Fill :attr:`summaries` for every request that lacks one: one backend call for all of them
        (SQL tasks need none)."""
        missing: dict[tuple[str, int], SimulatorRequest] = {}
        for request in requests:
            key = (request.example.id, request.interpretation)
            if not is_sql_task(request.example) and key not in self.summaries and key not in missing:
                missing[key] = request
        if not missing:
            return
        prompts = [self.summary_messages(r.example, r.interpretation) for r in missing.values()]
        outputs = self.backend.complete(prompts, self.summary_params)
        for (key, request), output in zip(missing.items(), outputs, strict=True):
            summary = " ".join(output.split())
            if not summary:
                self.fallbacks += 1
                summary = f"The user wants to know: {request.example.history[-1].content}"
            self.summaries[key] = summary

    def own_texts(self, request: SimulatorRequest) -> dict[str, list[str]]:
        """What a degenerate reply to ``request`` may copy from the simulator itself: ``goal`` = the target
        SQL (SQL tasks) or the cached summary (none before :meth:`summarize` ran for it), ``instructions`` =
        the fixed lines of the reply prompt's system message."""
        if is_sql_task(request.example):
            goal, template = gold_answer(request.example, request.interpretation), SQL_REPLY_SYSTEM
        else:
            goal, template = self.summaries.get((request.example.id, request.interpretation)), REPLY_SYSTEM
        return {"goal": [goal] if goal else [], "instructions": instruction_lines(template)}

    # -- stage (b) ------------------------------------------------------------------------------------------------
    def reply_messages(self, request: SimulatorRequest) -> list[Message]:
        """Prompt for the user's next message (needs the summary unless the task is SQL)."""
        example = request.example
        if is_sql_task(example):
            system = SQL_REPLY_SYSTEM.format(sql=gold_answer(example, request.interpretation))
        else:
            system = REPLY_SYSTEM.format(summary=self.summaries[(example.id, request.interpretation)])
        dialogue = [m for m in request.conversation if m.get("role") != "system"]
        content = REPLY_TEMPLATE.format(context=truncate(example.context, self.context_chars) or "(none)",
                                        transcript=transcript(dialogue))
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def reply(self, requests: Sequence[SimulatorRequest]) -> list[str]:
        """One user reply per request: at most one summary call (uncached goals) and one reply call."""
        if not requests:
            return []
        for request in requests:
            check_interpretation(request.example, request.interpretation)
            simulated_turns(request)  # validates the conversation's shape
        self.summarize(requests)
        outputs = self.backend.complete([self.reply_messages(r) for r in requests], self.params)
        replies = []
        for request, output in zip(requests, outputs, strict=True):
            text = clean_reply(output)
            if not text:
                self.fallbacks += 1
                text = FALLBACK_REPLY
            said = "\n".join(m["content"] for m in request.conversation if m.get("role") != "system")
            text, redacted = redact_answer(text, gold_answer(request.example, request.interpretation), said)
            if redacted:
                self.redactions += 1
                logger.debug("user simulator leaked the gold answer for %s; redacted", request.example.id)
            replies.append(text)
        return replies
