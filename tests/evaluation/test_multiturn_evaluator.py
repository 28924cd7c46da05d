"""evaluate_policy / summarize: scripted policies over the ChatBackend interface, hand-computed columns."""

from __future__ import annotations

import pytest

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.cache import CachedBackend
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.env.user_simulator import NO_CLARIFICATION_REPLY, REPEAT_REPLY, OracleUserSimulator
from clarifylab.errors import ConfigError
from clarifylab.evaluation.evaluator import TrajectoryRecord, evaluate_policy, summarize
from clarifylab.metrics.task_heuristics import EmbeddingSimilarityHeuristic

CLASSIFIER = HeuristicActionClassifier()
ORACLE = OracleUserSimulator()


def reply_answer(example: Example, turns) -> str:
    """The answer of the interpretation the user's last reply names."""
    reply = turns[-1]["content"]
    return next(c.answer for c in example.clarifications if c.reply == reply)


def gold_policy(example: Example, turns) -> str:
    """Asks the gold question exactly when the gold action is clarify, then answers correctly."""
    if example.action is Action.CLARIFY:
        return example.response if not turns else reply_answer(example, turns)
    return example.goal[0]


def test_gold_policy_on_the_synthetic_corpus_scores_one(scripted_policy, synthetic_examples):
    policy = scripted_policy(synthetic_examples, gold_policy)
    result = evaluate_policy(policy, synthetic_examples, CLASSIFIER, ORACLE)
    s = result.summary
    n, n_clarify = len(synthetic_examples), sum(e.action is Action.CLARIFY for e in synthetic_examples)
    assert (s["macro_f1"], s["accuracy"], s["clarify_precision"], s["clarify_recall"]) == (1.0, 1.0, 1.0, 1.0)
    assert (s["turn_h"], s["trajectory_h"], s["post_clarify_h"]) == (1.0, 1.0, 1.0)
    assert (s["n_trajectories"], s["n_post_clarify"], s["n_gold_clarify"]) == (n, n_clarify, n_clarify)
    assert s["heuristic"] == "exact_match" and s["interpretations"] == "first"
    # One batched call for all first responses, one for the round after the clarifications.
    assert [len(batch) for batch in policy.calls] == [n, n_clarify]


def impatient_policy(example: Example, turns) -> str:
    """Answers at once: correct on answer examples, a guess ("0") when a slot is missing."""
    return example.goal[0] if example.action is Action.ANSWER else "0"


def test_answering_without_the_needed_slot_loses_trajectory_h(scripted_policy, synthetic_examples):
    policy = scripted_policy(synthetic_examples, impatient_policy)
    s = evaluate_policy(policy, synthetic_examples, CLASSIFIER, ORACLE).summary
    n_answer = sum(e.action is Action.ANSWER for e in synthetic_examples)
    share = n_answer / len(synthetic_examples)  # 4 / 8
    assert s["trajectory_h"] == pytest.approx(share) and s["trajectory_h"] < 1
    assert s["trajectory_h_gold_clarify"] == 0.0 and s["trajectory_h_gold_answer"] == 1.0
    # No trajectory clarified: post-clarification H is undefined (None, shown as "-"), not 0.
    assert s["post_clarify_h"] is None and s["n_post_clarify"] == 0 and s["clarify_rate"] == 0.0
    # gold half clarify, all predicted answer: answer P = 1/2, R = 1, F1 = 2/3; clarify F1 = 0.
    assert s["macro_f1"] == pytest.approx(1 / 3) and s["clarify_recall"] == 0.0
    assert len(policy.calls) == 1


def table_example(id: str, question: str, goal: str | None = None) -> Example:
    common = dict(id=id, task="synthetic_tables", context="Year|Revenue\n2020|12.5\n2021|-3.25",
                  history=[Turn("user", question)])
    if goal is None:
        return Example(**common, response="Which year do you mean?", action=Action.CLARIFY, goal=["12.5"],
                       clarifications=[Clarification("2020", "12.5"), Clarification("2021", "-3.25")])
    return Example(**common, response=goal, action=Action.ANSWER, goal=[goal])


HANDMADE = [table_example("c0", "What was the revenue?"), table_example("c1", "And the revenue then?"),
            table_example("a0", "What was the revenue in 2020?", "12.5"),
            table_example("a1", "How many years are shown?", "2")]
SCRIPT = {  # example id -> replies of the policy, turn by turn
    "c0": ["Which year do you mean?", "It was 12.5."],   # asks, then answers right
    "c1": ["Which year?", "0"],                           # asks a shorter question, then answers wrong
    "a0": ["12.5"],                                       # answers right at once
    "a1": ["Which year do you mean?", "2"],               # asks needlessly, then answers right
}


def scripted_replies(example: Example, turns) -> str:
    return SCRIPT[example.id][sum(m["role"] == "assistant" for m in turns)]


def test_every_column_on_a_hand_computed_case(scripted_policy):
    policy = scripted_policy(HANDMADE, scripted_replies)
    result = evaluate_policy(policy, HANDMADE, CLASSIFIER, ORACLE, interpretations="first")
    s = result.summary
    # gold [C, C, A, A], predicted [C, C, A, C]. clarify: TP 2, FP 1 -> P 2/3, R 1, F1 0.8;
    # answer: TP 1, FN 1 -> P 1, R 1/2, F1 2/3; macro (0.8 + 2/3) / 2.
    assert s["accuracy"] == pytest.approx(3 / 4)
    assert s["clarify_precision"] == pytest.approx(2 / 3) and s["clarify_recall"] == 1.0
    assert s["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    # turn H: c0 question == r -> 1; c1 "Which year?" vs "Which year do you mean?": bag F1 2*(1*0.4)/1.4 = 0.57;
    # a0 "12.5" == r -> 1; a1 a question vs the number "2" -> 0.
    assert s["turn_h"] == pytest.approx((1 + 0.57 + 1 + 0) / 4)
    # trajectory H: c0 12.5 -> 1, c1 0 -> 0, a0 -> 1, a1 2 -> 1.
    assert s["trajectory_h"] == pytest.approx(3 / 4)
    assert s["post_clarify_h"] == pytest.approx(2 / 3)  # c0, c1, a1 clarified
    assert (s["trajectory_h_gold_clarify"], s["trajectory_h_gold_answer"]) == (0.5, 1.0)
    assert (s["n_examples"], s["n_trajectories"], s["n_post_clarify"], s["n_gold_clarify"]) == (4, 4, 3, 2)
    assert s["clarify_rate"] == 0.75 and s["turn_limit_rate"] == 0.0 and s["mean_assistant_turns"] == 1.75
    records = {r.id: r for r in result.records}
    assert records["a1"].turns[1] == {"role": "user", "content": NO_CLARIFICATION_REPLY}
    assert records["c0"].turns == [{"role": "assistant", "content": "Which year do you mean?"},
                                   {"role": "user", "content": "2020"},
                                   {"role": "assistant", "content": "It was 12.5."}]
    assert records["c0"].actions == ["clarify", "answer"] and records["c0"].goal == "12.5"


def test_turn_limit_scores_the_last_question(scripted_policy):
    policy = scripted_policy(HANDMADE[:1], lambda example, turns: "Which year do you mean?")
    result = evaluate_policy(policy, HANDMADE[:1], CLASSIFIER, ORACLE, max_turns=2)
    (record,) = result.records
    assert record.hit_turn_limit and record.n_clarifications == 2 and record.trajectory_h == 0.0
    assert [m["content"] for m in record.turns if m["role"] == "user"] == ["2020"]
    assert result.summary["turn_limit_rate"] == 1.0 and result.summary["post_clarify_h"] == 0.0
    result = evaluate_policy(policy, HANDMADE[:1], CLASSIFIER, ORACLE, max_turns=3)
    assert [m["content"] for m in result.records[0].turns if m["role"] == "user"] == ["2020", REPEAT_REPLY]


class LetterOverlap:
    """A stand-in embedder: 1.0 for equal strings, else the share of shared letters (Jaccard)."""

    def score(self, predictions, references):
        return [len(set(p) & set(r)) / len(set(p) | set(r)) for p, r in zip(predictions, references)]


def test_abg_coqa_style_example_gets_one_trajectory_per_interpretation(scripted_policy):
    story = "Ann drove the red car; Bo rode the blue bike."
    ambiguous = Example(id="s1|3|1", task="abg_coqa", context=story, history=[Turn("user", "What colour was it?")],
                        response="The car or the bike?", action=Action.CLARIFY, goal=["red", "blue"],
                        clarifications=[Clarification("The car.", "red"), Clarification("The bike.", "blue")])
    clear = Example(id="s1|4|1", task="abg_coqa", context=story, history=[Turn("user", "Who drove?")],
                    response="Ann", action=Action.ANSWER, goal=["Ann"])

    def decide(example: Example, turns) -> str:
        if example is clear:
            return "Ann"
        return "The car or the bike?" if not turns else {"The car.": "red", "The bike.": "green"}[turns[-1]["content"]]

    policy = scripted_policy([ambiguous, clear], decide)
    heuristics = {"abg_coqa": EmbeddingSimilarityHeuristic(LetterOverlap())}
    result = evaluate_policy(policy, [ambiguous, clear], CLASSIFIER, ORACLE, heuristics=heuristics)
    assert [(r.id, r.interpretation, r.goal) for r in result.records] == [
        ("s1|3|1", 0, "red"), ("s1|3|1", 1, "blue"), ("s1|4|1", 0, "Ann")]
    assert [r.outcome for r in result.records] == ["red", "green", "Ann"]
    # green vs blue: letters {g,r,e,n} & {b,l,u,e} = {e} of 7 -> 1/7.
    assert [r.trajectory_h for r in result.records] == pytest.approx([1.0, 1 / 7, 1.0])
    s = result.summary
    assert s["interpretations"] == "all" and (s["n_examples"], s["n_trajectories"]) == (2, 3)
    assert s["turn_h"] == 1.0  # per unique prompt: both first responses equal their gold responses
    assert s["n"] == 2 and s["macro_f1"] == 1.0  # the action of y counts once per example (decision point)
    # The shared first response is generated once per unique prompt, then one round for both interpretations.
    assert [len(batch) for batch in policy.calls] == [2, 2]


def test_repeated_cached_evaluation_makes_no_backend_call(scripted_policy, tmp_path):
    inner = scripted_policy(HANDMADE, scripted_replies)
    results, usages = [], []
    for _ in range(2):
        meter = UsageMeter()
        cached = CachedBackend(inner, tmp_path / "calls" / "policy.sqlite", namespace="policy")
        results.append(evaluate_policy(meter.track("policy", cached), HANDMADE, CLASSIFIER, ORACLE))
        usages.append(meter.summary()["policy"])
        cached.close()
    assert usages[0]["backend_calls"] == 2 and usages[0]["cache_misses"] == 7 and usages[0]["prompt_tokens"] > 0
    assert usages[1]["backend_calls"] == 0 and usages[1]["cache_hits"] == 7 and usages[1]["prompt_tokens"] == 0
    assert len(inner.calls) == 2  # the second evaluation never reached the policy
    assert [r.to_dict() for r in results[0].records] == [r.to_dict() for r in results[1].records]


def record(id: str, gold: str, predicted: str, turn_h: float, trajectory_h: float, clarifications: int,
           interpretation: int = 0) -> TrajectoryRecord:
    return TrajectoryRecord(id=id, task="t", interpretation=interpretation, gold_action=gold,
                            predicted_action=predicted, first_response="", turn_h=turn_h, outcome="", goal="",
                            trajectory_h=trajectory_h, n_clarifications=clarifications, hit_turn_limit=False,
                            actions=["clarify"] * clarifications + ["answer"])


def test_summarize_counts_turn_h_once_per_example():
    records = [record("x", "clarify", "clarify", 0.5, 1.0, 1, 0), record("x", "clarify", "clarify", 0.5, 0.0, 1, 1),
               record("y", "answer", "answer", 1.0, 0.25, 0)]
    s = summarize(records, heuristic="h")
    assert s["turn_h"] == 0.75 and s["trajectory_h"] == pytest.approx(1.25 / 3) and s["post_clarify_h"] == 0.5
    assert s["heuristic"] == "h" and s["mean_assistant_turns"] == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="no trajectories"):
        summarize([])


def test_action_metrics_count_each_example_once_whatever_its_trajectories():
    # x: ambiguous, two interpretations, gold clarify, answered at once; y: clear, answered. Per example:
    # gold [C, A], predicted [A, A] -> accuracy 1/2; clarify F1 0; answer P 1/2, R 1, F1 2/3 -> macro 1/3;
    # clarify P undefined (never predicted). Per trajectory it would be accuracy 1/3 and macro (0 + 1/2) / 2.
    records = [record("x", "clarify", "answer", 0.0, 0.0, 0, 0), record("x", "clarify", "answer", 0.0, 0.0, 0, 1),
               record("y", "answer", "answer", 1.0, 1.0, 0)]
    s = summarize(records)
    assert (s["n"], s["n_trajectories"]) == (2, 3)
    assert s["accuracy"] == 0.5 and s["macro_f1"] == pytest.approx(1 / 3)
    assert (s["clarify_precision"], s["clarify_recall"]) == (None, 0.0)


def test_bad_options_fail_loudly(scripted_policy):
    policy = scripted_policy(HANDMADE, scripted_replies)
    with pytest.raises(ConfigError, match="interpretations='some'"):
        evaluate_policy(policy, HANDMADE, CLASSIFIER, ORACLE, interpretations="some")
    with pytest.raises(ConfigError, match="no examples"):
        evaluate_policy(policy, [], CLASSIFIER, ORACLE)
