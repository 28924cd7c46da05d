"""Batching of a multi-round rollout: B examples x R rounds cost 1 + R policy calls, and the LLM user simulator
and the LLM action classifier are called once per round for all live trajectories (issue 14, item 3)."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.llm_action_classifier import FewShotLLMActionClassifier
from clarifylab.env.rollout import rollout
from clarifylab.env.user_simulator import SUMMARY_SYSTEM, LLMUserSimulator
from clarifylab.errors import ConfigError

ASK = "Which one do you mean?"


def examples(n: int) -> list[Example]:
    """``n`` clarify examples whose question says how many times the scripted policy asks before answering."""
    return [Example(id=f"e{i}", task="synthetic_tables", context=f"table {i}",
                    history=[Turn("user", f"asks={i % 3} What was the profit?")], response=ASK, action=Action.CLARIFY,
                    goal=["3.5"], clarifications=[Clarification("Fenomar.", "3.5")]) for i in range(n)]


class RecordingBackend:
    """One backend for every role; records ``(role, batch size)`` per ``complete`` call.

    Policy: asks ``asks=<k>`` times (from the first user message), then answers "3.5". Classifier: "clarify" when
    the labelled response is the question. Simulator: a summary, then "Fenomar." as every user reply.
    """

    name = "recording"
    model_id = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def complete(self, batch, params):
        batch = [list(c) for c in batch]
        roles = {self.role(c[0]["content"]) for c in batch}
        assert len(roles) == 1, f"one call mixes roles: {roles}"
        role = roles.pop()
        self.calls.append((role, len(batch)))
        if role == "classifier":
            last = [c[-1]["content"].split("Last assistant response:\n")[1] for c in batch]
            return ["clarify" if response.startswith(ASK) else "answer" for response in last]
        if role == "summary":
            return ["The user wants the profit of Fenomar."] * len(batch)
        if role == "user":
            return ["Fenomar."] * len(batch)
        return [self.policy_reply(c) for c in batch]

    @staticmethod
    def role(system: str) -> str:
        return ("summary" if system == SUMMARY_SYSTEM else "classifier" if system.startswith("You label")
                else "user" if system.startswith("You play") else "policy")

    @staticmethod
    def policy_reply(conversation) -> str:
        wanted = int(conversation[1]["content"].split()[0].split("=")[1])
        asked = sum(m["role"] == "assistant" for m in conversation)
        return ASK if asked < wanted else "3.5"


def test_b_examples_r_rounds_make_one_plus_r_policy_calls_and_one_simulator_and_classifier_call_per_round():
    backend = RecordingBackend()
    batch = examples(9)  # asks 0, 1, 2 times: 3 answer at once, 6 ask once, 3 ask twice -> 2 rounds
    trajectories = rollout(backend, batch, FewShotLLMActionClassifier(backend, batch, k=2), LLMUserSimulator(backend),
                           max_turns=3)
    assert backend.calls == [
        ("policy", 9), ("classifier", 9),                                        # y for all, A(y)
        ("summary", 6), ("user", 6), ("policy", 6), ("classifier", 6),            # round 1: the 6 that asked
        ("user", 3), ("policy", 3), ("classifier", 3),                           # round 2: the 3 that asked again
    ]
    rounds = 2
    assert sum(role == "policy" for role, _ in backend.calls) == 1 + rounds
    assert [t.n_clarifications for t in trajectories] == [0, 1, 2] * 3
    assert [t.outcome for t in trajectories] == ["3.5"] * 9 and not any(t.hit_turn_limit for t in trajectories)


def test_call_count_does_not_grow_with_the_number_of_examples():
    counts = []
    for n in (3, 30):
        backend = RecordingBackend()
        batch = examples(n)
        rollout(backend, batch, FewShotLLMActionClassifier(backend, batch, k=1), LLMUserSimulator(backend),
                max_turns=3)
        counts.append([role for role, _ in backend.calls])
    assert counts[0] == counts[1]  # same sequence of calls; only the batch sizes grow


def test_per_example_instructions_share_one_batch():
    backend = RecordingBackend()
    batch = examples(4)
    values = ["Answer briefly.", None, "Answer briefly.", "Ask when unsure."]
    prompts = []
    original = backend.complete

    def recording(conversations, params):
        prompts.append([c[0]["content"] for c in conversations])
        return original(conversations, params)

    backend.complete = recording
    rollout(backend, batch, FewShotLLMActionClassifier(backend, batch, k=1), LLMUserSimulator(backend), max_turns=3,
            instruction=values)
    assert [role for role, _ in backend.calls].count("policy") == 1 + 2  # asks 0, 1, 2, 0 times -> 2 rounds
    first = prompts[0]
    assert first[0].startswith("Answer briefly.") and first[3].startswith("Ask when unsure.")
    assert not first[1].startswith(("Answer briefly.", "Ask when unsure."))  # None: the task's own instruction
    with pytest.raises(ConfigError, match="got 2 instructions for 4 examples"):
        rollout(backend, batch, FewShotLLMActionClassifier(backend, batch, k=1), LLMUserSimulator(backend),
                instruction=["a", "b"])
