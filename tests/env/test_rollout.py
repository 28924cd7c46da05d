"""Batched trajectory rollout (ACT Alg. 2 lines 6-12) with scripted policies, and once with a real tiny model."""

from __future__ import annotations

import pytest

from clarifylab.backends.base import SamplingParams
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.llm_action_classifier import FewShotLLMActionClassifier
from clarifylab.env.rollout import rollout
from clarifylab.env.user_simulator import REPEAT_REPLY, SUMMARY_SYSTEM, LLMUserSimulator, OracleUserSimulator
from clarifylab.errors import ConfigError

C, A = Action.CLARIFY, Action.ANSWER
ASK = "Which one do you mean?"


def make_examples() -> list[Example]:
    """Two clarify examples (one with two interpretations) and one answer example; one-turn histories."""
    return [
        Example(id="c1", task="synthetic_tables", context="table 1", history=[Turn("user", "How much revenue?")],
                response="Which year?", action=C, goal=["10", "12"],
                clarifications=[Clarification("2020, please.", "10"), Clarification("I mean 2021.", "12")]),
        Example(id="c2", task="synthetic_tables", context="table 2", history=[Turn("user", "What was the profit?")],
                response="Which company?", action=C, goal=["3.5"], clarifications=[Clarification("Fenomar.", "3.5")]),
        Example(id="a1", task="synthetic_tables", context="table 3",
                history=[Turn("user", "What was Fenomar's profit in 2020?")], response="3.5", action=A, goal=["3.5"]),
    ]


# What the scripted policies answer after the user's reply (keyed by that reply).
ANSWER_FOR_REPLY = {"2020, please.": "10", "I mean 2021.": "12", "Fenomar.": "3.5"}


class ScriptedPolicy:
    """A chat backend whose reply depends on the conversation; records batches and sampling params.

    ``mode``: "clarify_once" asks once, then answers from the user's reply; "answer" answers at once;
    "forever" always asks; "clarify_if" asks once only for first questions in ``ask_for``.
    """

    name = "scripted"
    model_id = "scripted-policy"

    def __init__(self, mode: str, ask_for: frozenset[str] = frozenset()):
        self.mode, self.ask_for = mode, ask_for
        self.calls: list[list[list[dict]]] = []
        self.params: list[SamplingParams] = []

    def complete(self, batch, params):
        self.calls.append([list(c) for c in batch])
        self.params.append(params)
        return [self.respond(c) for c in batch]

    def respond(self, conversation) -> str:
        assert conversation[0]["role"] == "system" and conversation[-1]["role"] == "user"
        asked = any(m["role"] == "assistant" for m in conversation[2:])
        question = conversation[1]["content"]
        if self.mode == "forever" or (not asked and (self.mode == "clarify_once" or question in self.ask_for)):
            return ASK
        return ANSWER_FOR_REPLY.get(conversation[-1]["content"], "3.5")


class CountingSimulator(OracleUserSimulator):
    def __init__(self):
        self.batches = []

    def reply(self, requests):
        self.batches.append(list(requests))
        return super().reply(requests)


def test_clarify_once_then_answer():
    policy, simulator = ScriptedPolicy("clarify_once"), CountingSimulator()
    trajectories = rollout(policy, make_examples(), HeuristicActionClassifier(), simulator)
    assert [t.example.id for t in trajectories] == ["c1", "c2", "a1"]
    assert [t.turns for t in trajectories] == [
        [{"role": "assistant", "content": ASK}, {"role": "user", "content": reply},
         {"role": "assistant", "content": answer}]
        for reply, answer in [("2020, please.", "10"), ("Fenomar.", "3.5"),
                              ("I have nothing to add; my question is as I asked it. Please answer it.", "3.5")]]
    for t in trajectories:
        assert (t.first_response, t.first_action, t.actions) == (ASK, C, [C, A])
        assert (t.n_clarifications, t.hit_turn_limit, t.outcome) == (1, False, t.turns[-1]["content"])
    assert [t.goal for t in trajectories] == ["10", "3.5", "3.5"]
    assert len(policy.calls) == 2 and [len(c) for c in policy.calls] == [3, 3]
    assert len(simulator.batches) == 1 and len(simulator.batches[0]) == 3
    # the policy sees prompt + turns; the simulator sees history + turns (no system message)
    assert policy.calls[1][0][-2:] == [{"role": "assistant", "content": ASK},
                                       {"role": "user", "content": "2020, please."}]
    assert simulator.batches[0][0].conversation == [{"role": "user", "content": "How much revenue?"},
                                                    {"role": "assistant", "content": ASK}]
    assert trajectories[0].messages()[0]["role"] == "system" and trajectories[0].messages()[-1]["content"] == "10"
    assert trajectories[0].to_dict()["actions"] == ["clarify", "answer"]


def test_interpretations_all_gives_one_trajectory_per_clarification():
    trajectories = rollout(ScriptedPolicy("clarify_once"), make_examples(), HeuristicActionClassifier(),
                           OracleUserSimulator(), interpretations="all")
    assert [(t.example.id, t.interpretation, t.outcome, t.goal) for t in trajectories] == [
        ("c1", 0, "10", "10"), ("c1", 1, "12", "12"), ("c2", 0, "3.5", "3.5"), ("a1", 0, "3.5", "3.5")]
    with pytest.raises(ConfigError, match="interpretations must be one of"):
        rollout(ScriptedPolicy("answer"), make_examples(), HeuristicActionClassifier(), OracleUserSimulator(),
                interpretations="some")


def test_immediate_answers_make_one_call_and_no_simulation():
    policy, simulator = ScriptedPolicy("answer"), CountingSimulator()
    trajectories = rollout(policy, make_examples() * 4, HeuristicActionClassifier(), simulator)
    assert len(trajectories) == 12 and len(policy.calls) == 1 and simulator.batches == []
    assert all(t.turns == [{"role": "assistant", "content": "3.5"}] and t.actions == [A] for t in trajectories)
    assert all(t.n_clarifications == 0 and not t.hit_turn_limit for t in trajectories)


def test_clarifying_forever_stops_at_turn_limit():
    policy = ScriptedPolicy("forever")
    trajectories = rollout(policy, make_examples()[:2], HeuristicActionClassifier(), OracleUserSimulator(),
                           max_turns=3)
    assert len(policy.calls) == 3
    for t in trajectories:
        assert [m["role"] for m in t.turns] == ["assistant", "user", "assistant", "user", "assistant"]
        assert t.actions == [C, C, C] and t.n_clarifications == 3 and t.hit_turn_limit and t.outcome == ASK
        assert t.turns[3]["content"] == REPEAT_REPLY  # the oracle adds nothing the second time
    single = rollout(ScriptedPolicy("forever"), make_examples()[:1], HeuristicActionClassifier(),
                     OracleUserSimulator(), max_turns=1)
    assert single[0].turns == [{"role": "assistant", "content": ASK}] and single[0].hit_turn_limit
    with pytest.raises(ConfigError, match="max_turns must be >= 1"):
        rollout(policy, make_examples(), HeuristicActionClassifier(), OracleUserSimulator(), max_turns=0)


def test_only_live_trajectories_continue_and_calls_equal_one_plus_rounds():
    policy, simulator = ScriptedPolicy("clarify_if", ask_for=frozenset({"What was the profit?"})), CountingSimulator()
    examples = make_examples() * 5  # 15 trajectories, 5 of them ask once
    trajectories = rollout(policy, examples, HeuristicActionClassifier(), simulator, progress=True)
    assert [len(c) for c in policy.calls] == [15, 5]
    assert [len(b) for b in simulator.batches] == [5]
    assert [t.n_clarifications for t in trajectories] == [0, 1, 0] * 5
    assert [t.outcome for t in trajectories] == ["3.5"] * 15


def test_first_responses_skip_the_first_policy_call():
    policy = ScriptedPolicy("clarify_once")
    examples = make_examples()
    trajectories = rollout(policy, examples, HeuristicActionClassifier(), OracleUserSimulator(),
                           first_responses=[ASK, "99", ASK], interpretations="all")  # one per example, broadcast
    assert len(policy.calls) == 1 and len(policy.calls[0]) == 3  # c1 (x2) and a1 continue
    assert [(t.first_response, t.outcome) for t in trajectories] == [(ASK, "10"), (ASK, "12"), ("99", "99"),
                                                                      (ASK, "3.5")]
    given_actions = rollout(ScriptedPolicy("answer"), examples, HeuristicActionClassifier(), OracleUserSimulator(),
                            first_responses=["a", "b", "c"], first_actions=[A, A, A])
    assert [t.actions for t in given_actions] == [[A]] * 3
    with pytest.raises(ConfigError, match="got 2 first_responses for 3 examples / 3 trajectories"):
        rollout(policy, examples, HeuristicActionClassifier(), OracleUserSimulator(), first_responses=["a", "b"])


def test_seed_shifts_per_round_and_greedy_is_deterministic():
    policy = ScriptedPolicy("forever")
    rollout(policy, make_examples(), HeuristicActionClassifier(), OracleUserSimulator(), max_turns=3,
            params=SamplingParams(max_new_tokens=8, temperature=0.7, seed=11))
    assert [p.seed for p in policy.params] == [11, 12, 13]
    runs = [rollout(ScriptedPolicy("clarify_once"), make_examples(), HeuristicActionClassifier(),
                    OracleUserSimulator()) for _ in range(2)]
    assert [t.to_dict() for t in runs[0]] == [t.to_dict() for t in runs[1]]


def test_no_examples_make_no_calls():
    policy = ScriptedPolicy("answer")
    assert rollout(policy, [], HeuristicActionClassifier(), OracleUserSimulator()) == [] and policy.calls == []


class RoleBackend:
    """One scripted backend for the policy, the few-shot classifier and the LLM user simulator."""

    name = "roles"
    model_id = "roles"

    def __init__(self):
        self.policy, self.calls = ScriptedPolicy("clarify_once"), []

    def complete(self, batch, params):
        batch = [list(c) for c in batch]
        system = batch[0][0]["content"]
        role = "summary" if system == SUMMARY_SYSTEM else (
            "classifier" if system.startswith("You label") else ("user" if system.startswith("You play") else "policy"))
        self.calls.append((role, len(batch)))
        if role == "classifier":
            self.last_classifier_batch = batch
        if role == "classifier":
            last = [c[-1]["content"].split("Last assistant response:\n")[1] for c in batch]
            return ["clarify" if response.startswith(ASK) else "answer" for response in last]
        if role == "summary":
            return ["The user wants to know the revenue in 2020."] * len(batch)
        if role == "user":
            return ["2020, please."] * len(batch)
        return self.policy.complete(batch, params)


def test_rollout_with_llm_classifier_and_llm_simulator_batches_every_role():
    backend = RoleBackend()
    examples = make_examples()
    classifier = FewShotLLMActionClassifier(backend, examples, k=2)
    trajectories = rollout(backend, examples, classifier, LLMUserSimulator(backend))
    assert backend.calls == [("policy", 3), ("classifier", 3), ("summary", 3), ("user", 3), ("policy", 3),
                             ("classifier", 3)]
    assert [t.outcome for t in trajectories] == ["10", "10", "10"] and all(t.actions == [C, A] for t in trajectories)
    # later rounds show the classifier the whole dialogue so far
    assert f"Assistant: {ASK}\nUser: 2020, please." in backend.last_classifier_batch[0][-1]["content"]


def test_tiny_model_rollout_end_to_end():
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.models import build_tiny_model_and_tokenizer

    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    policy = TransformersBackend(model, tokenizer, batch_size=4)
    examples = make_examples()[:2]
    params = SamplingParams(max_new_tokens=6)
    runs = [rollout(policy, examples, HeuristicActionClassifier(), OracleUserSimulator(), max_turns=2, params=params)
            for _ in range(2)]
    trajectories = runs[0]
    assert [t.to_dict() for t in trajectories] == [t.to_dict() for t in runs[1]]  # greedy: deterministic
    rounds = max(len(t.actions) for t in trajectories) - 1
    assert policy.usage["calls"] == 2 * (1 + rounds)
    for t in trajectories:
        assert t.turns[0]["content"] == t.first_response and t.outcome == t.turns[-1]["content"]
        assert [m["role"] for m in t.turns] == ["assistant", "user"] * (len(t.actions) - 1) + ["assistant"]
        assert t.actions == HeuristicActionClassifier().classify([m["content"] for m in t.turns[::2]])
        assert t.hit_turn_limit == (t.actions[-1] is C) and len(t.actions) <= 2

    # Force a clarification round through the real model, with the same model as LLM user simulator:
    # one summary call + one simulator reply call + one policy call.
    calls_before = policy.usage["calls"]
    forced = rollout(policy, examples, HeuristicActionClassifier(), LLMUserSimulator(policy, context_chars=200),
                     max_turns=2, params=params, first_responses=[ASK, ASK])
    assert policy.usage["calls"] - calls_before == 3
    assert all(len(t.turns) == 3 and t.turns[1]["content"] and t.actions[0] is C for t in forced)
