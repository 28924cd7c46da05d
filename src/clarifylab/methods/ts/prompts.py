"""The teacher-student curriculum's prompts: the student's two prompts (answer only; ask when information is
missing), the teacher's three (identify the needed column, rewrite the question without a span, judge a
clarifying question), the teacher-as-user's two replies (answer a clarifying question; correct an answer), and the
question the teacher guides a non-asking student to (:func:`guided_question`).
Written for this project; ``PROMPT_VERSION`` is part of the build fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clarifylab.backends.base import Message
from clarifylab.data.chat_format import instruction_for, prompt_messages
from clarifylab.data.loaders.linearize import clean_cell
from clarifylab.data.schema import Example

PROMPT_VERSION = "ts-2"

ASK_IF_MISSING = (" If the table, the text or the question lacks information you need to answer, do not guess: ask "
                  "one short clarifying question about exactly what is missing.")

NOT_TARGETED_REPLY = "I can't tell you more than that. Please answer with what you have."
"""The user's reply to a clarifying question that does not ask for the missing information."""


def student_answer_messages(example: Example, instruction: str | None = None) -> list[Message]:
    """The student is asked for the answer only (the task's own instruction): the student-fails filter and the
    first turn of the correction scenario."""
    return prompt_messages(example, instruction)


def student_clarify_messages(example: Example, instruction: str | None = None) -> list[Message]:
    """The student may ask: the task's instruction plus :data:`ASK_IF_MISSING` (the clarification scenario)."""
    return prompt_messages(example, instruction_for(example.task, instruction) + ASK_IF_MISSING)


def continue_messages(messages: list[Message], assistant: str, user: str) -> list[Message]:
    """``messages`` + the assistant's turn + the user's next turn."""
    return [*messages, {"role": "assistant", "content": assistant}, {"role": "user", "content": user}]


def correction_reply(user_text: str) -> str:
    """The teacher-as-user's correction of a wrong answer: it supplies the missing information."""
    return f"That is not right. {user_text} Please answer again."


def identify_messages(header: list[str], question: str, answer: str) -> list[Message]:
    """Ask the teacher which column holds the information the question needs."""
    columns = "; ".join(f"'{clean_cell(h)}'" for h in header if clean_cell(h))
    return [{"role": "system", "content": "You read table questions and name the table column that holds the "
                                          "information needed to answer them. Reply with the column name only."},
            {"role": "user", "content": f"Columns: {columns}\nQuestion: {question}\nAnswer: {answer}\n"
                                        "Which column is needed?"}]


def rewrite_messages(question: str, span: str) -> list[Message]:
    """Ask the teacher to rewrite ``question`` leaving ``span`` out (the question strategy, teacher mode)."""
    return [{"role": "system", "content": "You rewrite questions so that they leave out one piece of information. "
                                          "Reply with the rewritten question only."},
            {"role": "user", "content": f"Question: {question}\nLeave out: {span.strip()}\nRewritten question:"}]


def judge_messages(missing: str, clarifying_question: str) -> list[Message]:
    """Ask the teacher whether a clarifying question asks for the missing information (yes / no)."""
    return [{"role": "system", "content": "You judge clarifying questions. Reply with yes or no only."},
            {"role": "user", "content": f"Missing information: {missing}\nClarifying question: {clarifying_question}\n"
                                        "Does the clarifying question ask for the missing information?"}]


def guided_question(removed: Mapping[str, Any]) -> str:
    """The clarifying question the teacher guides a non-asking student to (``clarify_guide=rule``), written from
    what was removed (``Removed.to_dict()``) in words the student can see: the question's or the table's gap,
    never the removed value itself."""
    what, header = str(removed["what"]), clean_cell(str(removed.get("header") or ""))
    if what == "column":
        return f"The table has no {header} column. Could you tell me the {header} values?"
    if what == "row":
        return "The table seems to be missing the row this question needs. Could you give me that row?"
    if what == "cell":
        return f"The {header} value this question needs is missing from the table. What is it?"
    if what == "period":
        return "Which year or period do you mean?"
    if what == "unit":
        return "Which unit or scale do you mean?"
    return "Your question seems to leave something out. What exactly do you mean?"
