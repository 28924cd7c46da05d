"""ACT's on-policy replacement batches its rollout (issue 14, item 3): right-action samples of pairs built with
different system instructions are simulated in ONE rollout, so a sampled batch makes 1 + rounds policy calls."""

from __future__ import annotations

import dataclasses

from clarifylab.backends.base import SamplingParams
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.user_simulator import OracleUserSimulator
from clarifylab.methods.act.pairs import build_act_pairs
from clarifylab.methods.act.replacer import ACTReplacer, ACTReplacerConfig


class FixedM:
    name, model_id = "m", "m"

    def complete(self, batch, params):
        return ["off-policy loser ?"] * len(batch)


class ScriptedPolicy:
    """Replies by the last user message; records every call's conversations."""

    name, model_id = "scripted", "scripted-policy"

    def __init__(self, replies):
        self.replies, self.calls = replies, []

    def complete(self, batch, params):
        self.calls.append([list(c) for c in batch])
        return [self.replies[c[-1]["content"]] for c in batch]


def test_pairs_with_different_instructions_share_one_rollout():
    examples = build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 0, "test": 0})["train"]
    pairs = build_act_pairs(examples, FixedM(), params=SamplingParams(), k=1)[0]
    # q1, q2 are clarify examples (the oracle replies 'Fenomar, please.' / 'I mean 2020.'); give them two instructions
    instructions = [None, "Ask first when in doubt.", "Be brief; ask if unsure.", None]
    pairs = [dataclasses.replace(p, meta={**p.meta, "instruction": value}) for p, value in zip(pairs, instructions)]
    q0, q1, q2, q3 = (e.history[-1].content for e in examples)
    policy = ScriptedPolicy({q0: "1", q1: "Which company do you mean?", "Fenomar, please.": "43.8",
                             q2: "Which year do you mean?", "I mean 2020.": "5", q3: "1.09"})
    replacer = ACTReplacer(None, HeuristicActionClassifier(), OracleUserSimulator(),
                           ACTReplacerConfig(threshold=0.9, max_turns=3, seed=5))
    _, branches, _ = replacer.replace(pairs, policy, SamplingParams(max_new_tokens=8))
    assert branches == ["good_trajectory", "good_trajectory", "bad_trajectory", "good_trajectory"]
    assert [len(call) for call in policy.calls] == [4, 2]  # sampling, then ONE simulated round for q1 and q2
    systems = [conversation[0]["content"] for conversation in policy.calls[1]]
    assert systems[0].startswith("Ask first when in doubt.") and systems[1].startswith("Be brief; ask if unsure.")
