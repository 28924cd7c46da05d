"""Oracle and LLM user simulators: replies, summary caching, batching, SQL conditioning, redaction."""

from __future__ import annotations

import pytest

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.user_simulator import (
    FALLBACK_REPLY,
    NO_CLARIFICATION_REPLY,
    REDACTION,
    REPEAT_REPLY,
    SUMMARY_SYSTEM,
    LLMUserSimulator,
    OracleUserSimulator,
    SimulatorRequest,
    UserSimulator,
    clean_reply,
    gold_answer,
    redact_answer,
)
from clarifylab.errors import DataFormatError

QUESTION = "Which year do you mean: 2020 or 2021?"


def clarify_example(id_="c1", task="synthetic_tables") -> Example:
    return Example(id=id_, task=task, context="Company|Metric|2020|2021\nFenomar|Revenue|10.5|12.25",
                   history=[Turn("user", "What was Fenomar's revenue?")], response=QUESTION,
                   action=Action.CLARIFY, goal=["10.5", "12.25"],
                   clarifications=[Clarification("I mean 2020.", "10.5"), Clarification("2021, please.", "12.25")])


def answer_example() -> Example:
    return Example(id="a1", task="synthetic_tables", context="Company|Metric|2020\nFenomar|Revenue|10.5",
                   history=[Turn("user", "What was Fenomar's revenue in 2020?")], response="10.5",
                   action=Action.ANSWER, goal=["10.5"])


def request(example: Example, interpretation: int = 0, questions: int = 1) -> SimulatorRequest:
    """History, then `questions` assistant questions separated by user replies."""
    conversation = [{"role": t.role, "content": t.content} for t in example.history]
    for n in range(questions):
        if n:
            conversation.append({"role": "user", "content": "some reply"})
        conversation.append({"role": "assistant", "content": QUESTION})
    return SimulatorRequest(example, interpretation, conversation)


class ScriptedSimulatorBackend:
    """Answers summary prompts (recognised by their system message) and reply prompts with fixed texts;
    records every call."""

    name = "scripted"
    model_id = "scripted-simulator"

    def __init__(self, summary="The user wants to know Fenomar's revenue in 2020.", reply="I mean 2020."):
        self.summary, self.reply_text = summary, reply
        self.calls: list[list[list[dict]]] = []

    def complete(self, batch, params: SamplingParams) -> list[str]:
        self.calls.append([list(c) for c in batch])
        return [self.summary if c[0]["content"] == SUMMARY_SYSTEM else self.reply_text for c in batch]


def is_summary_call(call) -> bool:
    return all(c[0]["content"] == SUMMARY_SYSTEM for c in call)


# -- oracle ---------------------------------------------------------------------------------------------------------

def test_oracle_replies_with_gold_clarification_per_interpretation():
    simulator = OracleUserSimulator()
    assert isinstance(simulator, UserSimulator)
    example = clarify_example()
    assert simulator.reply([request(example, 0), request(example, 1)]) == ["I mean 2020.", "2021, please."]


def test_oracle_second_question_and_answer_example_get_fixed_replies():
    simulator = OracleUserSimulator()
    replies = simulator.reply([request(clarify_example(), 0, questions=2), request(answer_example())])
    assert replies == [REPEAT_REPLY, NO_CLARIFICATION_REPLY]


def test_oracle_tolerates_system_message_and_rejects_bad_requests():
    example = clarify_example()
    with_system = request(example)
    with_system = SimulatorRequest(example, 0, [{"role": "system", "content": "ctx"}] + with_system.conversation)
    assert OracleUserSimulator().reply([with_system]) == ["I mean 2020."]
    with pytest.raises(DataFormatError, match="'c1'.*interpretation 2 does not exist"):
        OracleUserSimulator().reply([request(example, 2)])
    no_question = SimulatorRequest(example, 0, [{"role": "user", "content": "What was Fenomar's revenue?"}])
    with pytest.raises(ValueError, match="ending with the assistant's question"):
        OracleUserSimulator().reply([no_question])


def test_gold_answer_prefers_clarification_then_goal():
    assert gold_answer(clarify_example(), 1) == "12.25"
    assert gold_answer(answer_example(), 0) == "10.5"


# -- LLM simulator --------------------------------------------------------------------------------------------------

def test_llm_simulator_summarizes_once_then_replies_per_round():
    backend = ScriptedSimulatorBackend()
    simulator = LLMUserSimulator(backend)
    assert isinstance(backend, ChatBackend) and isinstance(simulator, UserSimulator)
    example, other = clarify_example("c1"), clarify_example("c2")
    batch = [request(example, 0), request(example, 0), request(other, 1)]  # two requests share a goal

    assert simulator.reply(batch) == ["I mean 2020."] * 3
    assert len(backend.calls) == 2 and is_summary_call(backend.calls[0]) and not is_summary_call(backend.calls[1])
    assert len(backend.calls[0]) == 2  # one summary per (example id, interpretation)
    assert len(backend.calls[1]) == 3  # one reply per request
    assert set(simulator.summaries) == {("c1", 0), ("c2", 1)}

    simulator.reply([request(example, 0, questions=2), request(other, 1, questions=2)])  # next round: cached
    assert len(backend.calls) == 3 and not is_summary_call(backend.calls[2])


def test_llm_simulator_prompts_carry_gold_goal_and_summary():
    backend = ScriptedSimulatorBackend(summary="The user wants to know Fenomar's 2021 revenue.")
    simulator = LLMUserSimulator(backend)
    simulator.reply([request(clarify_example(), 1)])
    summary_prompt = "\n".join(m["content"] for m in backend.calls[0][0])
    assert "12.25" in summary_prompt and "2021, please." in summary_prompt  # gold goal and gold reply
    assert "What was Fenomar's revenue?" in summary_prompt
    reply_prompt = backend.calls[1][0]
    assert "The user wants to know Fenomar's 2021 revenue." in reply_prompt[0]["content"]
    assert "12.25" not in reply_prompt[0]["content"]  # the reply stage sees the summary, not the gold answer
    assert reply_prompt[1]["content"].rstrip().endswith("Write the user's next message.")
    assert f"Assistant: {QUESTION}" in reply_prompt[1]["content"]


def test_llm_simulator_sql_task_conditions_on_target_sql_without_summary():
    sql = "SELECT name FROM singer WHERE age > 30"
    example = Example(id="s1", task="ambigsql", context="singer(name, age)", history=[Turn("user", "Old singers?")],
                      response="Which columns?", action=Action.CLARIFY, goal=[sql],
                      clarifications=[Clarification("Just their names.", sql)])
    backend = ScriptedSimulatorBackend(reply="Only the names of singers older than 30.")
    simulator = LLMUserSimulator(backend)
    assert simulator.reply([request(example)]) == ["Only the names of singers older than 30."]
    assert len(backend.calls) == 1 and not is_summary_call(backend.calls[0])
    assert sql in backend.calls[0][0][0]["content"]


def test_llm_simulator_redacts_leaked_answer_and_cleans_reply():
    backend = ScriptedSimulatorBackend(reply="User: I mean 2020, which was 10.5.\nAssistant: Thanks!")
    simulator = LLMUserSimulator(backend)
    assert simulator.reply([request(clarify_example(), 0)]) == [f"I mean 2020, which was {REDACTION}."]
    assert simulator.redactions == 1


def test_llm_simulator_replaces_empty_generation():
    simulator = LLMUserSimulator(ScriptedSimulatorBackend(summary="", reply="   "))
    assert simulator.reply([request(clarify_example())]) == [FALLBACK_REPLY]
    assert simulator.fallbacks == 2  # empty summary and empty reply
    assert simulator.summaries[("c1", 0)] == "The user wants to know: What was Fenomar's revenue?"


@pytest.mark.parametrize("reply, answer, said, expected", [
    ("It was 10.5 in 2020.", "10.5", "", f"It was {REDACTION} in 2020."),
    ("It was 110.5 or 10.50.", "10.5", "", "It was 110.5 or 10.50."),      # whole tokens only
    ("Fenomar, please.", "fenomar", "", f"{REDACTION}, please."),           # case-insensitive
    ("Fenomar, please.", "Fenomar", "Did you mean Fenomar?", "Fenomar, please."),  # already said
    ("The year 3.", "3", "", "The year 3."),                                # one-character answers are kept
])
def test_redact_answer(reply, answer, said, expected):
    assert redact_answer(reply, answer, said)[0] == expected


def test_clean_reply():
    assert clean_reply('  user: "2021, please."  ') == "2021, please."
    assert clean_reply("\nI mean 2020.\n\nAlso, thanks") == "I mean 2020."
    assert clean_reply("2018: 36.3\n2019: 38.9") == "2018: 36.3"
    assert clean_reply(" \n ") == ""
