"""Prompting baselines (ACT App. E): seeded demonstrations, message rewriting, response extraction."""

from __future__ import annotations

import pytest

from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.user_simulator import OracleUserSimulator
from clarifylab.errors import ConfigError
from clarifylab.evaluation.baselines import (
    COT_TURN_INSTRUCTION,
    PROACTIVE_TURN_INSTRUCTION,
    TARGET_HEADER,
    BaselineSpec,
    PromptingBaseline,
    draw_demonstrations,
    extract_response,
)
from clarifylab.evaluation.evaluator import evaluate_policy


class EchoBackend:
    """Returns a fixed output per call and records what it was sent."""

    name = "echo"
    model_id = "echo-model"

    def __init__(self, output: str) -> None:
        self.output = output
        self.batches: list[list[list[dict[str, str]]]] = []

    def complete(self, batch, params):
        self.batches.append([list(c) for c in batch])
        return [self.output] * len(batch)


def test_demonstrations_are_a_seeded_sample_of_the_pool(synthetic_pool):
    first = draw_demonstrations(synthetic_pool, 5, seed=3)
    assert [e.id for e in first] == [e.id for e in draw_demonstrations(synthetic_pool, 5, seed=3)]
    assert len({e.id for e in first}) == 5 and all(e in synthetic_pool for e in first)
    assert [e.id for e in draw_demonstrations(synthetic_pool, 5, seed=4)] != [e.id for e in first]
    with pytest.raises(ConfigError, match="13 demonstration conversations requested but the training pool has 12"):
        draw_demonstrations(synthetic_pool, 13, seed=0)


@pytest.mark.parametrize("style", ["standard", "cot", "proactive"])
def test_rewritten_prompt_holds_k_demonstrations_and_the_original_system_message(style, synthetic_pool,
                                                                                 synthetic_examples):
    baseline = PromptingBaseline(EchoBackend("x"), BaselineSpec(style, conversations=3, seed=1), synthetic_pool)
    conversation = prompt_messages(synthetic_examples[2])
    rewritten = baseline.rewrite(conversation)
    system = rewritten[0]["content"]
    assert [system.count(f"Example conversation {i}:") for i in (1, 2, 3, 4)] == [1, 1, 1, 0]
    for demo in baseline.demonstrations:
        assert demo.context in system and demo.history[-1].content in system
        if demo.action is Action.CLARIFY:  # the full gold trajectory: question, user's reply, final answer
            assert f"User: {demo.clarifications[0].reply}" in system and demo.clarifications[0].answer in system
    assert system.endswith(f"{TARGET_HEADER}\n{conversation[0]['content']}")
    assert rewritten[1:-1] == conversation[1:-1] and len(rewritten) == len(conversation)
    expected_tail = {"standard": None, "cot": COT_TURN_INSTRUCTION, "proactive": PROACTIVE_TURN_INSTRUCTION}[style]
    if expected_tail is None:
        assert rewritten[-1] == conversation[-1]
    else:
        assert rewritten[-1]["content"] == f"{conversation[-1]['content']}\n\n{expected_tail}"
    if style == "cot":
        assert "Reasoning: " in system and "\nResponse: " in system
    if style == "proactive":
        assert "Action: Ask a clarifying question" in system and "Action: Directly answer" in system
    assert conversation == prompt_messages(synthetic_examples[2])  # the caller's messages are not modified


@pytest.mark.parametrize(("output", "style", "expected"), [
    ("Reasoning: The year is missing.\nResponse: Which year do you mean?", "cot", "Which year do you mean?"),
    ("**Reasoning:** clear.\n**Response:** 12.5\nUser: thanks", "cot", "12.5"),
    ("Action: Directly answer (clear)\nresponse: 12.5", "proactive", "12.5"),
    ("Reasoning: it is ambiguous\nWhich year?", "cot", "Which year?"),   # no marker: first labelled line dropped
    ("Reasoning: Which year?", "cot", "Which year?"),                   # nothing else: the label is dropped
    ("Assistant: 12.5\nUser: and 2021?", "standard", "12.5"),
    ("Response: 12.5", "standard", "Response: 12.5"),                   # standard asks for no format
])
def test_extract_response(output, style, expected):
    assert extract_response(output, style) == expected


def test_baseline_runs_through_the_rollout_and_classifier(synthetic_pool, synthetic_examples):
    inner = EchoBackend("Reasoning: The request does not say which year.\nResponse: Which year do you mean?")
    baseline = PromptingBaseline(inner, BaselineSpec("cot", conversations=2, seed=0), synthetic_pool)
    result = evaluate_policy(baseline, synthetic_examples[:2], HeuristicActionClassifier(), OracleUserSimulator(),
                             max_turns=2)
    # The extracted question is what the classifier, the simulator and the records see.
    assert {r.first_response for r in result.records} == {"Which year do you mean?"}
    assert result.summary["clarify_rate"] == 1.0 and result.summary["turn_limit_rate"] == 1.0
    assert len(baseline.raw_outputs) == 4 and baseline.raw_outputs[0].startswith("Reasoning:")
    assert all(c[0]["content"].count("Example conversation") == 2 for batch in inner.batches for c in batch)
    assert baseline.model_id == "echo-model" and baseline.name == "echo+cot"


def test_bad_style_is_a_config_error():
    with pytest.raises(ConfigError, match="baseline.style='socratic'"):
        BaselineSpec("socratic")
