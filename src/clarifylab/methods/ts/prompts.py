"""The teacher-student curriculum's prompts: the student's two prompts (answer only; ask when information is
missing), the teacher's three (identify the needed column, rewrite the question without a span, judge a
clarifying question), and the teacher-as-user's two replies (answer a clarifying question; correct an answer).
Written for this project; ``PROMPT_VERSION`` is part of the build fingerprint."""

from __future__ import annotations

from clarifylab.backends.base import Message
from clarifylab.data.chat_format import instruction_for, prompt_messages
from clarifylab.data.loaders.linearize import clean_cell
from clarifylab.data.schema import Example

PROMPT_VERSION = "ts-1"

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
