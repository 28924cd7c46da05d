"""Example -> chat messages for a policy: a system prompt (task instruction + linearized context),
then the history, then (for training) the gold assistant turns."""

from __future__ import annotations

from clarifylab.data.schema import Action, Example

Message = dict[str, str]

# The policy's task instruction, per task. A dataset config may override it (``dataset.instruction``).
DEFAULT_INSTRUCTION = (
    "You are a careful assistant answering questions about the data below. If the user's request is "
    "ambiguous or lacks information needed to answer it, ask one short clarifying question instead of "
    "guessing. Otherwise reply with the answer only."
)
TASK_INSTRUCTIONS: dict[str, str] = {
    "synthetic_tables": (
        "You answer questions about the table below. If the question does not say which company, "
        "metric or year it means, ask one short clarifying question instead of guessing. Otherwise "
        "reply with the answer only: a number, rounded to two decimals."
    ),
    "pacific": (
        "You answer questions about the financial table and text below. If the question is ambiguous "
        "(for example it does not say which year, item or kind of amount it means), ask one short "
        "clarifying question instead of guessing. Otherwise reply with the answer only: the words copied "
        "from the table or text (several items separated by commas), or for a calculation the expression, "
        "' = ' and the result, followed by its scale (thousand, million, billion or %)."
    ),
    "tatqa": (
        "You answer questions about the financial table and text below. Reply with the answer only: the words "
        "copied from the table or text (several items separated by commas), or for a calculation the expression, "
        "' = ' and the result, followed by its scale (thousand, million, billion or %)."
    ),
    "wtq": (
        "You answer questions about the table below. Reply with the answer only: the value or values from the "
        "table (several values separated by commas), or the number the question asks for."
    ),
}


def instruction_for(task: str, override: str | None = None) -> str:
    """The system instruction for ``task`` (``override`` wins when given)."""
    return override or TASK_INSTRUCTIONS.get(task, DEFAULT_INSTRUCTION)


def system_message(example: Example, instruction: str | None = None) -> Message:
    """The system message: the task instruction followed by the linearized context."""
    text = instruction_for(example.task, instruction)
    if example.context:
        text = f"{text}\n\n{example.context}"
    return {"role": "system", "content": text}


def prompt_messages(example: Example, instruction: str | None = None) -> list[Message]:
    """System message + history (ending with the user turn the policy must respond to)."""
    return [system_message(example, instruction)] + [{"role": t.role, "content": t.content} for t in example.history]


def response_messages(example: Example, interpretation: int = 0) -> list[Message]:
    """The gold continuation after the prompt.

    An answer example continues with the gold response. A clarify example continues with the gold
    clarifying question, the user's reply under ``interpretation`` and the final answer, so SFT
    teaches both when to ask and how to answer once the user has clarified.
    """
    turns = [{"role": "assistant", "content": example.response}]
    if example.action is Action.CLARIFY:
        clarification = example.clarifications[interpretation]
        turns += [{"role": "user", "content": clarification.reply},
                  {"role": "assistant", "content": clarification.answer}]
    return turns


def trajectory_messages(example: Example, instruction: str | None = None, interpretation: int = 0) -> list[Message]:
    """The full gold conversation: prompt messages followed by the gold continuation."""
    return prompt_messages(example, instruction) + response_messages(example, interpretation)
