"""The teacher of SML: the same model given the solution as private information (Cook et al., §3).

It reads the student's public attempts and writes feedback that must never contain the answer
(:func:`leaks_answer` checks every message it writes). For Q-priming it also writes, from its private
knowledge, the question the student should have asked, and answers that question without the answer.
Every prompt here is ours (the paper's are not public).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from clarifylab.backends.base import Message
from clarifylab.metrics.answer_match import normalize_answer, parse_number

_ANY_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

TEACHER_SYSTEM = (
    "You are a patient teacher. A student is solving a question about the table below. You know the solution, "
    "which the student cannot see. Never write the final answer or any number equal to it: guide the student "
    "to find it.\n\n{context}\n\nPrivate solution: {solution}"
)
FEEDBACK_REQUEST = (
    "Conversation so far:\n{transcript}\n\nThe student's last attempt is wrong. In one or two sentences, say "
    "what is wrong (the company, figure, year or arithmetic to use) so the student can try again. Do not give "
    "the answer."
)
QUESTION_REQUEST = (
    "Conversation so far:\n{transcript}\n\nWrite the one short question the student should ask you now to get "
    "what it is missing (which company, figure, year or operation to use). Write it as the student would, end it "
    "with '?', and do not include the answer."
)
REPLY_REQUEST = (
    "Conversation so far:\n{transcript}\n\nThe student asks: {question}\nAnswer this question in one sentence. "
    "Do not give the final answer."
)
FALLBACK_FEEDBACK = "That is not right yet. Check which row, column and year the question needs, and try again."
FALLBACK_QUESTION = "Which company, figure and year should I use?"


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (``"12.50"``, ``"-3"``, ``"1,000"``), as floats."""
    found = []
    for match in _ANY_NUMBER.findall(text.replace("\u2212", "-")):
        value = parse_number(match)
        if value is not None:
            found.append(value)
    return found


def leaks_answer(text: str, answer: str) -> bool:
    """True when ``text`` gives away ``answer``: for a numeric answer, any number in ``text`` equal to it
    (or to its absolute value); otherwise the normalized answer appears in the normalized text."""
    gold = parse_number(answer)
    if gold is not None:
        return any(abs(value - gold) < 1e-9 or abs(abs(value) - abs(gold)) < 1e-9 for value in numbers_in(text))
    target = normalize_answer(answer)
    return bool(target) and f" {target} " in f" {normalize_answer(text)} "


def transcript(turns: Sequence[Message]) -> str:
    """The public dialogue as the teacher reads it (``Student:`` / ``Teacher:`` lines)."""
    names = {"user": "Teacher", "assistant": "Student"}
    lines = [f"Question: {turns[0]['content']}"] if turns and turns[0]["role"] == "user" else []
    rest = turns[1:] if lines else turns
    return "\n".join(lines + [f"{names.get(t['role'], t['role'])}: {t['content']}" for t in rest])


def teacher_messages(context: str, solution: str, request: str) -> list[Message]:
    """A teacher prompt: the private system message and one request."""
    return [{"role": "system", "content": TEACHER_SYSTEM.format(context=context, solution=solution)},
            {"role": "user", "content": request}]


def feedback_prompt(context: str, solution: str, turns: Sequence[Message]) -> list[Message]:
    """Ask for feedback on the last student attempt in ``turns``."""
    return teacher_messages(context, solution, FEEDBACK_REQUEST.format(transcript=transcript(turns)))


def question_prompt(context: str, solution: str, turns: Sequence[Message]) -> list[Message]:
    """Ask for the question the student should have asked (Q-priming); ``turns`` end with the wrong attempt."""
    return teacher_messages(context, solution, QUESTION_REQUEST.format(transcript=transcript(turns)))


def reply_prompt(context: str, solution: str, turns: Sequence[Message], question: str) -> list[Message]:
    """Ask the teacher to answer the student's question (Q-priming); ``turns`` end before the question."""
    return teacher_messages(context, solution, REPLY_REQUEST.format(transcript=transcript(turns), question=question))
