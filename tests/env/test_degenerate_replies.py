"""Degenerate user-simulator replies: copies of the question, of an earlier turn, of the goal text, on
hand-made replies; flagged per trajectory by rollout and counted by the evaluation summary."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.degenerate_replies import copy_source, is_copy, token_f1, tokens
from clarifylab.env.rollout import rollout
from clarifylab.env.user_simulator import (
    REPLY_SYSTEM,
    SUMMARY_SYSTEM,
    LLMUserSimulator,
    OracleUserSimulator,
    SimulatorRequest,
    instruction_lines,
    own_texts,
)
from clarifylab.evaluation.evaluator import evaluate_policy

QUESTION = "Which year do you mean: 2020 or 2021?"
SUMMARY = "The user wants to know Fenomar's revenue in the year 2020."
DIALOGUE = [{"role": "user", "content": "What was Fenomar's revenue?"}, {"role": "assistant", "content": QUESTION}]
RULE = "You are the one asking: never give the final answer or any result, and never do the assistant's work."
OWN = {"goal": [SUMMARY], "instructions": [RULE]}


def test_token_f1_by_hand():
    assert tokens("Which year, 2020?") == ["which", "year", "2020"]
    # reply 6 tokens, question 5, all 5 shared: 2 * 5 / 11.
    assert token_f1(tokens("Which year do you mean? 2020"), tokens("Which year do you mean?")) == pytest.approx(10 / 11)
    assert token_f1([], []) == 0.0


@pytest.mark.parametrize("reply, source", [
    (QUESTION, "question"),                                       # verbatim echo of the assistant
    ("which year do you mean 2020 or 2021", "question"),          # case and punctuation changed: F1 1.0
    ("Assistant: Which year do you mean: 2020 or 2021?", "question"),  # 8 of 9 tokens shared: F1 16/17
    ("What was Fenomar's revenue?", "history"),                   # the user's own earlier turn
    (SUMMARY, "goal"),                                            # its goal summary, verbatim
    ("The user wants to know Fenomar's revenue in 2020.", "goal"),  # 10 of 12 summary tokens: F1 20/22
    ("I mean 2020.", None),                                       # a genuine answer
    ("Fenomar's revenue in 2020, please.", None),                 # 5 of its 6 tokens in the summary: F1 10/18 < 0.8
    ("2020", None),                                               # one token: never compared
    # A rule of its own prompt, as SmolLM2 replied on Abg-CoQA ("You're" -> you, re: 19 of 20 tokens shared).
    ("You're the one asking: never give the final answer or any result, and never do the assistant's work.",
     "instructions"),
])
def test_copy_source_on_hand_made_replies(reply, source):
    assert copy_source(reply, DIALOGUE, OWN) == source


def test_the_closest_reference_names_the_source_ties_in_order():
    dialogue = DIALOGUE + [{"role": "user", "content": "2020"}, {"role": "assistant", "content": QUESTION}]
    assert copy_source(QUESTION, dialogue) == "question"  # also an earlier turn (F1 1.0 both): the question first
    # A summary that repeats the user's earlier turn with one more word: the exact copy (history) wins.
    assert copy_source("What was Fenomar's revenue?", DIALOGUE, {"goal": ["What was Fenomar's revenue then?"]}) == \
        "history"
    assert copy_source("The user wants to know Fenomar's revenue?", DIALOGUE,
                       {"goal": ["The user wants to know Fenomar's revenue"]}) == "goal"  # goal 1.0 > history 6/13
    assert copy_source(SUMMARY, DIALOGUE) is None  # an oracle has no texts of its own
    assert not is_copy("Yes.", "Yes.")  # single tokens are not compared


def test_llm_simulator_offers_its_summary_and_prompt_lines():
    lines = instruction_lines("You play the user.\n\nWhat you want: {summary}\n\nRules:\n- Answer briefly.")
    assert lines == ["You play the user.", "Rules:", "Answer briefly."]
    simulator = LLMUserSimulator(Roles())
    request = SimulatorRequest(EXAMPLES[0], 0, list(DIALOGUE))
    assert simulator.own_texts(request) == {"goal": [], "instructions": instruction_lines(REPLY_SYSTEM)}
    simulator.reply([request])
    assert simulator.own_texts(request)["goal"] == [SUMMARY]
    assert own_texts(OracleUserSimulator(), request) == {}


def clarify_example(id_: str, marker: str) -> Example:
    """A clarify example whose context carries ``marker`` (ECHO-Q, ECHO-GOAL, GENUINE): the scripted
    simulator backend reads it from the reply prompt to decide how to reply."""
    return Example(id=id_, task="synthetic_tables", context=f"{marker}\nCompany|2020|2021\nFenomar|10.5|12.25",
                   history=[Turn("user", "What was Fenomar's revenue?")], response=QUESTION, action=Action.CLARIFY,
                   goal=["10.5"], clarifications=[Clarification("I mean 2020.", "10.5")])


class Roles:
    """One scripted backend: the policy asks QUESTION, then answers 10.5; the LLM simulator summarizes
    as SUMMARY and replies with a copy of the question (ECHO-Q), of its summary (ECHO-GOAL) or a
    genuine answer (GENUINE)."""

    name = model_id = "roles"

    def complete(self, batch, params):
        return [self.respond(conversation) for conversation in batch]

    @staticmethod
    def respond(conversation) -> str:
        system, content = conversation[0]["content"], conversation[-1]["content"]
        if system == SUMMARY_SYSTEM:
            return SUMMARY
        if system.startswith("You play"):
            return QUESTION if "ECHO-Q" in content else SUMMARY if "ECHO-GOAL" in content else "I mean 2020."
        return "10.5" if any(m["role"] == "assistant" for m in conversation) else QUESTION


EXAMPLES = [clarify_example("q", "ECHO-Q"), clarify_example("g", "ECHO-GOAL"), clarify_example("ok", "GENUINE")]


def test_rollout_flags_each_simulated_reply():
    simulator = LLMUserSimulator(Roles())
    trajectories = rollout(Roles(), EXAMPLES, HeuristicActionClassifier(), simulator, max_turns=2)
    assert [t.turns[1]["content"] for t in trajectories] == [QUESTION, SUMMARY, "I mean 2020."]
    assert [t.degenerate_replies for t in trajectories] == [["question"], ["goal"], [None]]
    assert trajectories[0].to_dict()["degenerate_replies"] == ["question"]


def test_evaluation_counts_degenerate_replies_and_the_oracle_has_none():
    s = evaluate_policy(Roles(), EXAMPLES, HeuristicActionClassifier(), LLMUserSimulator(Roles()), max_turns=2).summary
    assert (s["n_sim_replies"], s["n_sim_degenerate"], s["n_trajectories_sim_degenerate"]) == (3, 2, 2)
    assert s["sim_degenerate_rate"] == pytest.approx(2 / 3)
    assert (s["sim_copies_question"], s["sim_copies_history"], s["sim_copies_goal"], s["sim_copies_instructions"]) \
        == (1, 0, 1, 0)
    oracle = evaluate_policy(Roles(), EXAMPLES, HeuristicActionClassifier(), OracleUserSimulator(), max_turns=2)
    assert (oracle.summary["n_sim_replies"], oracle.summary["sim_degenerate_rate"]) == (3, 0.0)
    answered = evaluate_policy(Roles(), EXAMPLES, HeuristicActionClassifier(), OracleUserSimulator(), max_turns=1)
    assert answered.summary["n_sim_replies"] == 0 and answered.summary["sim_degenerate_rate"] is None
