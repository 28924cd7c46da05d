"""Example -> chat messages."""

from clarifylab.data.chat_format import TASK_INSTRUCTIONS, prompt_messages, system_message, trajectory_messages
from clarifylab.data.schema import Action, Clarification, Example, Turn


def example(action=Action.CLARIFY) -> Example:
    return Example(
        id="e", task="synthetic_tables", context="TABLE", history=[Turn("user", "Revenue?")],
        response="Which year?" if action is Action.CLARIFY else "3", action=action, goal=["3"],
        clarifications=[Clarification("2021.", "3")] if action is Action.CLARIFY else [],
    )


def test_system_message_is_instruction_then_context():
    assert system_message(example()) == {"role": "system", "content": TASK_INSTRUCTIONS["synthetic_tables"] + "\n\nTABLE"}
    assert system_message(example(), instruction="Be brief.")["content"] == "Be brief.\n\nTABLE"


def test_prompt_ends_with_the_user_turn():
    messages = prompt_messages(example())
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[-1]["content"] == "Revenue?"


def test_trajectory_of_clarify_example_includes_reply_and_answer():
    messages = trajectory_messages(example())
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "Revenue?"), ("assistant", "Which year?"), ("user", "2021."), ("assistant", "3")]
    answer_messages = trajectory_messages(example(Action.ANSWER))
    assert [(m["role"], m["content"]) for m in answer_messages[1:]] == [("user", "Revenue?"), ("assistant", "3")]
