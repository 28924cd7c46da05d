"""max_examples=N: a seeded sample stratified by gold action, not the first N in file order."""

from __future__ import annotations

import pytest

from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.errors import ConfigError
from clarifylab.evaluation.eval_sample import action_quotas, sample_eval_examples


def example(i: int, action: Action) -> Example:
    return Example(id=f"e{i}", task="synthetic_tables", context="", history=[Turn("user", f"q{i}")],
                   response="r", action=action, goal=["g"],
                   clarifications=[Clarification("c", "g")] if action is Action.CLARIFY else [])


# Abg-CoQA-like file order: every ambiguous example comes late (here the last 2 of 10).
SPLIT = [example(i, Action.ANSWER if i < 8 else Action.CLARIFY) for i in range(10)]


def test_quotas_are_proportional_with_every_present_action():
    # 4 * 2/10 = 0.8 -> 0 + the largest remainder -> 1 clarify; 4 * 8/10 = 3.2 -> 3 answer.
    assert action_quotas({Action.CLARIFY: 2, Action.ANSWER: 8}, 4) == {Action.CLARIFY: 1, Action.ANSWER: 3}
    # 2 * 1/101 rounds to 0, but a present action keeps one draw.
    assert action_quotas({Action.CLARIFY: 1, Action.ANSWER: 100}, 2) == {Action.CLARIFY: 1, Action.ANSWER: 1}
    assert action_quotas({Action.CLARIFY: 0, Action.ANSWER: 10}, 4) == {Action.CLARIFY: 0, Action.ANSWER: 4}


def test_sample_holds_both_actions_where_the_first_n_hold_one():
    assert {e.action for e in SPLIT[:4]} == {Action.ANSWER}  # what max_examples=4 used to evaluate
    sample = sample_eval_examples(SPLIT, 4, seed=0)
    assert len(sample) == 4 and [e.action for e in sample].count(Action.CLARIFY) == 1
    assert [e.id for e in sample] == sorted((e.id for e in sample), key=lambda i: int(i[1:]))  # file order


def test_sample_is_fixed_by_the_seed():
    runs = {seed: [e.id for e in sample_eval_examples(SPLIT, 4, seed)] for seed in range(6)}
    assert runs[0] == [e.id for e in sample_eval_examples(SPLIT, 4, 0)]
    assert len({tuple(ids) for ids in runs.values()}) > 1  # other seeds draw other examples


def test_no_limit_or_a_large_one_keeps_everything_and_bad_values_fail():
    assert sample_eval_examples(SPLIT, None, 0) == SPLIT and sample_eval_examples(SPLIT, 10, 0) == SPLIT
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="max_examples must be null or a positive integer"):
            sample_eval_examples(SPLIT, bad, 0)
