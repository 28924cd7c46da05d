"""ACT Alg. 2 replacement on a scripted policy with the real heuristic classifier, oracle user and
synthetic-tables H: every branch with its exact continuations, the no-simulation ablation, the sampling
schedule, re-tokenization, logging and the per-rank generate-call count."""

from __future__ import annotations

import json

import pytest

from clarifylab.backends.base import SamplingParams
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.user_simulator import OracleUserSimulator
from clarifylab.errors import DataFormatError
from clarifylab.methods.act.pairs import build_act_pairs
from clarifylab.models import build_tiny_model_and_tokenizer
from clarifylab.methods.act.replacer import ACTReplacer, ACTReplacerConfig
from clarifylab.training.preference_data import PreferenceCollator, gold_vs_other_action_pairs, tokenize_pair


class ScriptedPolicy:
    """Replies by the conversation's last user message (the prompt's question or the simulated reply)."""

    name = "scripted"
    model_id = "scripted-policy"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.calls: list[tuple[int, SamplingParams]] = []

    def complete(self, batch, params):
        self.calls.append((len(batch), params))
        return [self.replies[conversation[-1]["content"]] for conversation in batch]


class FixedM:
    name = "m"
    model_id = "m"

    def complete(self, batch, params):
        return ["off-policy loser ?"] * len(batch)


@pytest.fixture(scope="module")
def examples():
    # q0 answer '1'; q1 clarify company (reply 'Fenomar, please.' -> 43.8); q2 clarify year ('I mean 2020.' -> 0.18);
    # q3 answer '1.09'
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 0, "test": 0})["train"]


@pytest.fixture(scope="module")
def pairs(examples):
    return build_act_pairs(examples, FixedM(), params=SamplingParams(), k=1)[0]


def script(examples, q3_reply: str = "1.09") -> dict[str, str]:
    q0, q1, q2, q3 = (e.history[-1].content for e in examples)
    return {q0: "Which year do you mean?",            # gold answer, sample clarifies -> wrong action
            q1: "Which company do you mean?",         # right action; the oracle replies 'Fenomar, please.'
            "Fenomar, please.": "43.8",               # ... and the policy answers correctly -> good trajectory
            q2: "Which year do you mean?",            # right action; the oracle replies 'I mean 2020.'
            "I mean 2020.": "5",                      # ... wrong final answer -> bad trajectory
            q3: q3_reply}                             # gold answer, sample answers


def make_replacer(tokenizer=None, **config):
    return ACTReplacer(tokenizer, HeuristicActionClassifier(), OracleUserSimulator(),
                       ACTReplacerConfig(threshold=0.9, max_turns=3, temperature=0.7, seed=5, **config))


def test_every_branch_of_alg2_with_exact_continuations(examples, pairs):
    policy = ScriptedPolicy(script(examples))
    new, branches, scores = make_replacer().replace(pairs, policy, SamplingParams(max_new_tokens=8))
    assert branches == ["wrong_action", "good_trajectory", "bad_trajectory", "good_trajectory"]
    assert scores == [None, 1.0, 0.0, 1.0]
    a = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    u = lambda text: {"role": "user", "content": text}  # noqa: E731
    # wrong action -> the sample replaces the loser; the gold winner stays
    assert (new[0].chosen, new[0].rejected) == (pairs[0].chosen, [a("Which year do you mean?")])
    # right action + good outcome -> the trajectory replaces the winner
    assert new[1].chosen == [a("Which company do you mean?"), u("Fenomar, please."), a("43.8")]
    assert new[1].rejected == pairs[1].rejected
    # right action + bad outcome -> the trajectory replaces the loser
    assert new[2].chosen == pairs[2].chosen
    assert new[2].rejected == [a("Which year do you mean?"), u("I mean 2020."), a("5")]
    # a right-action answer is a one-turn trajectory
    assert new[3].chosen == [a("1.09")] and new[3].rejected == pairs[3].rejected
    assert [p.meta["act_branch"] for p in new] == branches
    # one sampling call for the 4 pairs, then one simulation round for the 2 live clarifications
    assert [size for size, _ in policy.calls] == [4, 2]


def test_a_trajectory_that_never_answers_scores_zero(examples, pairs):
    replies = script(examples)
    replies["Fenomar, please."] = "Which metric do you mean?"
    replies["I have already told you what I mean. Please answer my question now."] = "Which year do you mean?"
    new, branches, _ = make_replacer().replace(pairs, ScriptedPolicy(replies), SamplingParams())
    assert branches[1] == "bad_trajectory" and len(new[1].rejected) == 5  # 3 questions, 2 user replies


def test_without_simulation_clarifications_win_and_answers_are_scored_directly(examples, pairs):
    replacer = make_replacer(simulation=False)
    policy = ScriptedPolicy(script(examples))
    new, branches, scores = replacer.replace(pairs, policy, SamplingParams())
    assert branches == ["wrong_action", "right_clarify", "right_clarify", "good_answer"]
    assert scores == [None, None, None, 1.0]
    assert new[1].chosen == [{"role": "assistant", "content": "Which company do you mean?"}]
    assert new[3].chosen == [{"role": "assistant", "content": "1.09"}]
    assert len(policy.calls) == 1  # no simulation round
    new, branches, scores = replacer.replace(pairs, ScriptedPolicy(script(examples, q3_reply="7")), SamplingParams())
    assert branches[3] == "bad_answer" and scores[3] == 0.0
    assert new[3].rejected == [{"role": "assistant", "content": "7"}] and new[3].chosen == pairs[3].chosen


def test_pairs_without_the_example_need_a_lookup(examples):
    plain = gold_vs_other_action_pairs(examples, ["x"] * len(examples))
    policy = ScriptedPolicy(script(examples))
    with pytest.raises(DataFormatError, match="generate.py task=act_pairs"):
        make_replacer().replace(plain, policy, SamplingParams())
    replacer = ACTReplacer(None, HeuristicActionClassifier(), OracleUserSimulator(), ACTReplacerConfig(),
                           examples={e.id: e for e in examples})
    assert replacer.replace(plain, ScriptedPolicy(script(examples)), SamplingParams())[1][1] == "good_trajectory"


def test_schedule_and_rank_seeds():
    every_other = make_replacer(sample_every=2)
    assert [every_other.should_sample(call) for call in range(5)] == [True, False, True, False, True]
    halves = make_replacer(sample_prob=0.5)
    drawn = [halves.should_sample(call) for call in range(200)]
    assert drawn == [make_replacer(sample_prob=0.5).should_sample(call) for call in range(200)]
    assert 60 < sum(drawn) < 140
    replacer = make_replacer()
    assert replacer.params(3, 0).seed != replacer.params(3, 1).seed != replacer.params(4, 0).seed
    assert replacer.params(3, 1).temperature == 0.7


class FakeTrainer:
    def __init__(self, rank: int, world: int) -> None:
        self.global_rank, self.world_size = rank, world


class FakeModule:
    def __init__(self, trainer=None) -> None:
        self._trainer = trainer
        self.logged: dict[str, float] = {}

    def log(self, name, value, **kwargs):
        self.logged[name] = value


@pytest.mark.parametrize(("rank", "world", "generate_calls"), [(0, 1, 2), (1, 2, 3)])
def test_call_retokenizes_logs_and_pads_generate_calls_across_ranks(examples, pairs, rank, world, generate_calls,
                                                                     tmp_path):
    _, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    policies = []

    def factory(module, size):
        policies.append(ScriptedPolicy(script(examples)))
        return policies[-1]

    replacer = ACTReplacer(tokenizer, HeuristicActionClassifier(), OracleUserSimulator(),
                           ACTReplacerConfig(max_turns=3, seed=5, sample_every=2), policy_factory=factory,
                           samples_dir=str(tmp_path / "samples"))
    batch = PreferenceCollator(tokenizer.pad_token_id)([tokenize_pair(p, tokenizer, 512) for p in pairs])
    module = FakeModule(FakeTrainer(rank, world))
    out = replacer(module, batch)
    assert [p.meta["act_branch"] for p in out.pairs] == ["wrong_action", "good_trajectory", "bad_trajectory",
                                                          "good_trajectory"]
    expected = PreferenceCollator(tokenizer.pad_token_id)([tokenize_pair(p, tokenizer, 512) for p in out.pairs])
    for side in ("chosen", "rejected"):
        for key in ("input_ids", "labels"):
            assert out.__dict__[side][key].tolist() == expected.__dict__[side][key].tolist()
    assert out.ref_chosen_logps is None and out.ref_rejected_logps is None
    assert len(policies[0].calls) == generate_calls  # padded to 1 + (max_turns - 1) calls under DDP
    assert policies[0].calls[0][1].seed == 5 + rank
    assert module.logged["act/wrong_action"] == 1 and module.logged["act/good_trajectory"] == 2
    assert module.logged["act/bad_trajectory"] == 1 and module.logged["act/mean_H"] == pytest.approx(2 / 3)
    # call 1 is not sampled (sample_every=2): the batch comes back untouched
    assert replacer(module, batch) is batch and module.logged["act/not_sampled"] == 4 and len(policies) == 1
    assert replacer.totals["not_sampled"] == 4 and replacer.totals["good_trajectory"] == 2
    # the samples log: one line per pair of the sampled call only, in this rank's file
    logged = [json.loads(line) for line in (tmp_path / "samples" / f"rank{rank}.jsonl").open()]
    assert [(r["call"], r["rank"], r["pair_id"], r["branch"]) for r in logged] == [
        (0, rank, p.id, p.meta["act_branch"]) for p in out.pairs]
    assert [r["sample"] for r in logged] == [p.meta["act_sample"] for p in out.pairs]
    assert [r["sample_action"] != r["gold_action"] for r in logged] == [True, False, False, False]  # wrong_action first


def test_the_success_threshold_is_the_tasks_unless_configured(examples):
    """Old code: ACTReplacerConfig.threshold = 0.9 for every task, so an Abg-CoQA trajectory with embedding
    similarity 0.85 was a loser. Now: the task's value (abg_coqa 0.7, synthetic_tables 0.9), trainer.threshold
    overriding it."""
    import dataclasses

    coqa = [dataclasses.replace(e, task="abg_coqa") for e in examples]
    coqa_pairs = build_act_pairs(coqa, FixedM(), params=SamplingParams(), k=1)[0]
    synthetic_pairs = build_act_pairs(examples, FixedM(), params=SamplingParams(), k=1)[0]

    def branches(pairs, **config):
        replacer = ACTReplacer(None, HeuristicActionClassifier(), OracleUserSimulator(),
                               ACTReplacerConfig(max_turns=3, seed=5, **config), scorer=lambda ts: [0.85] * len(ts))
        return replacer.replace(pairs, ScriptedPolicy(script(examples)), SamplingParams())[1]

    assert branches(coqa_pairs) == ["wrong_action", "good_trajectory", "good_trajectory", "good_trajectory"]
    assert branches(synthetic_pairs) == ["wrong_action", "bad_trajectory", "bad_trajectory", "bad_trajectory"]
    assert branches(coqa_pairs, threshold=0.9) == branches(synthetic_pairs)
