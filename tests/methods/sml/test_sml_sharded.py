"""Sharding reveals every piece exactly once; premature answers and the other sharded columns, exactly."""

import random

import pytest

from clarifylab.data.schema import Action
from clarifylab.data.synthetic.questions import QuestionSpec
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.backends.base import SamplingParams
from clarifylab.methods.sml.dialogue import heuristic_scorer
from clarifylab.methods.sml.problems import shard_spec
from clarifylab.methods.sml.sharded_eval import NUDGE, run_sharded
from clarifylab.methods.sml.sharded_metrics import (
    ShardedTrace,
    premature_attempts,
    question_rate,
    success_by_budget,
    summarize_sharded,
)
from sml_scripted import Scripted, problems

A, C = Action.ANSWER, Action.CLARIFY


def test_shards_cover_every_slot_once():
    spec = QuestionSpec("ratio", metric="revenue", year=2019, entity="Varnex", denominator="net income")
    shards = shard_spec(spec, random.Random(0))
    assert shards[0].slot == "intent" and "Varnex" not in shards[0].text and "2019" not in shards[0].text
    assert sorted(s.slot for s in shards[1:]) == ["denominator", "entity", "numerator", "year"]
    text = " ".join(s.text for s in shards)
    assert all(value in text for value in ("Varnex", "revenue", "net income", "2019"))


def test_sharded_dialogue_reveals_every_piece_exactly_once_in_order():
    probs = problems(4, "test")
    asker = Scripted(lambda c: "Which company do you mean?")
    traces, turns = run_sharded(asker, probs, heuristic_scorer(), HeuristicActionClassifier(), max_turns=8,
                                params=SamplingParams(), instruction=None)
    for problem, trace, dialogue in zip(probs, traces, turns):
        user = [m["content"] for m in dialogue if m["role"] == "user"]
        shards = [s.text for s in problem.shards]
        assert user[:len(shards)] == shards and set(user[len(shards):]) == {NUDGE}
        assert all(user.count(s) == 1 for s in shards)
        assert trace.revealed == [min(t, len(shards)) for t in range(1, 9)]
        assert trace.actions == [C] * 8 and premature_attempts(trace) == 0


def test_a_correct_attempt_ends_the_dialogue_and_early_attempts_are_premature():
    for problem in problems(4, "test"):  # one at a time: the scripted student knows this problem's answer
        def guess_then_answer(conversation, answer=problem.answer):  # wrong at turn 1, right at turn 2
            return "It is 0.01." if len(conversation) == 2 else f"The answer is {answer}."

        traces, _ = run_sharded(Scripted(guess_then_answer), [problem], heuristic_scorer(),
                                HeuristicActionClassifier(), max_turns=10, params=SamplingParams(), instruction=None)
        trace = traces[0]
        assert trace.actions == [A, A] and trace.correct == [False, True] and trace.success_turn == 2
        assert premature_attempts(trace) == 2  # both before every shard was revealed (n >= 3)


def test_premature_answers_on_hand_made_dialogues():
    # 3 shards: turn t sees min(t, 3) of them
    asked_first = ShardedTrace(3, [C, C, A], [False, False, True], [1, 2, 3])
    guessed = ShardedTrace(3, [A, C, A, A], [False, False, False, True], [1, 2, 3, 3])
    never = ShardedTrace(3, [A, A, A, A, A], [False] * 5, [1, 2, 3, 3, 3])
    assert [premature_attempts(t) for t in (asked_first, guessed, never)] == [0, 1, 2]
    assert success_by_budget([asked_first, guessed, never], [2, 3, 4]) == {2: 0.0, 3: pytest.approx(1 / 3),
                                                                          4: pytest.approx(2 / 3)}
    assert question_rate([asked_first, guessed, never]) == pytest.approx(3 / 12)
    summary = summarize_sharded([asked_first, guessed, never], [3], max_turns=10)
    assert summary["premature_per_dialogue"] == pytest.approx(1.0)
    assert summary["premature_any_rate"] == pytest.approx(2 / 3)
    assert summary["success"] == pytest.approx(2 / 3)
