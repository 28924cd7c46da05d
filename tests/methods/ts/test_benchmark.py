"""The benchmark's metrics: exact on hand-computed cases (pure function) and end to end with the scripted student."""

import pytest

from clarifylab.backends.base import SamplingParams
from clarifylab.data.jsonl import read_examples
from clarifylab.methods.ts.benchmark import play_pairs
from clarifylab.methods.ts.benchmark_metrics import PairOutcome, metrics_by_strategy, ts_metrics
from clarifylab.methods.ts.curriculum import Scorer

from ts_scripted import ScriptedStudent, build


def outcome(strategy, orig, ask_o, ask_a, targeted, cl, co):
    return PairOutcome(strategy, bool(orig), bool(ask_o), bool(ask_a), bool(targeted), bool(cl), bool(co))


def test_metrics_hand_computed():
    outcomes = [outcome("column", 1, 0, 1, 1, 1, 1),
                outcome("column", 1, 1, 1, 0, 0, 1),
                outcome("column", 0, 0, 0, 0, 0, 0),
                outcome("row", 1, 1, 0, 0, 1, 0)]
    column = ts_metrics(outcomes[:3])
    # AccOr 2/3, AccCl 1/3, AccCo 2/3; TP = 2 asked on ablated, FP = 1 asked on an original: P 2/3, R 2/3.
    assert column == {"n_pairs": 3, "acc_or": 2 / 3, "acc_cl": 1 / 3, "acc_co": 2 / 3, "clarify_precision": 2 / 3,
                      "clarify_recall": 2 / 3, "targeted_rate": 1 / 2}
    rows = metrics_by_strategy(outcomes)
    # row: never asks on the ablated task, asks on the original: P = 0 / (0 + 1) = 0, R = 0.
    assert rows["row"]["clarify_precision"] == 0.0 and rows["row"]["clarify_recall"] == 0.0
    assert rows["all"] == {"n_pairs": 4, "acc_or": 3 / 4, "acc_cl": 2 / 4, "acc_co": 2 / 4,
                           "clarify_precision": 2 / 4, "clarify_recall": 2 / 4, "targeted_rate": 1 / 2}
    assert ts_metrics([])["clarify_precision"] == 0.0


class OverAsker(ScriptedStudent):
    """Asks whenever it may (the small-model failure mode): every may-ask prompt gets a question first."""

    def reply(self, messages):
        from clarifylab.methods.ts.prompts import ASK_IF_MISSING

        if ASK_IF_MISSING in messages[0]["content"] and len(messages) == 2:
            return "Which year do you mean?"
        return super().reply(messages)


@pytest.mark.parametrize(("student", "expected"), [
    # The table reader: answers originals (AccOr 1), asks only when information is missing (P = R = 1), recovers
    # after the user's information in both scenarios (AccCl = AccCo = 1).
    (ScriptedStudent(), {"acc_or": 1.0, "acc_cl": 1.0, "acc_co": 1.0, "clarify_precision": 1.0,
                         "clarify_recall": 1.0}),
    # The over-asker: asks on originals too (P = 8 / 16); its "Which year?" misses the 4 removed columns (the rule
    # judge finds no 'column'/'2019' in it), so the user says no more and it cannot answer there: AccCl = 4 / 8.
    (OverAsker(), {"acc_or": 1.0, "acc_cl": 0.5, "acc_co": 1.0, "clarify_precision": 0.5, "clarify_recall": 1.0,
                   "targeted_rate": 0.5}),
])
def test_play_pairs_with_scripted_students(tmp_path, tatqa_file, student, expected):
    build(tmp_path / "b", tatqa_file, test_fraction=1.0)
    examples = read_examples(tmp_path / "b" / "test.jsonl")
    assert len(examples) == 8
    outcomes, records = play_pairs(student, examples, {"tatqa": Scorer("tatqa")}, SamplingParams(max_new_tokens=8))
    metrics = ts_metrics(outcomes)
    assert {k: metrics[k] for k in expected} == expected
    assert all(r["first_ablated"] != r["first_original"] or isinstance(student, OverAsker) for r in records)


class Parrot(ScriptedStudent):
    """Reads the table like the scripted student, asks for the missing row when it may, and answers every later
    turn by repeating the user's text."""

    def reply(self, messages):
        from clarifylab.methods.ts.prompts import ASK_IF_MISSING

        if len(messages) > 2:
            return messages[-1]["content"]
        if ASK_IF_MISSING in messages[0]["content"] and super().reply(messages).endswith("?"):
            return "Which row is missing from the table?"
        return super().reply(messages)


def test_contains_match_reads_sentences_as_answers(tmp_path, tatqa_file):
    build(tmp_path / "b", tatqa_file, test_fraction=1.0)
    examples = read_examples(tmp_path / "b" / "test.jsonl")
    chatty = ScriptedStudent(sentence="It was {} in total.")
    outcomes, _ = play_pairs(chatty, examples, {"tatqa": Scorer("tatqa", match="contains")},
                             SamplingParams(max_new_tokens=8))
    assert ts_metrics(outcomes) == ts_metrics(play_pairs(ScriptedStudent(), examples, {"tatqa": Scorer("tatqa")},
                                                         SamplingParams(max_new_tokens=8))[0])
    official, _ = play_pairs(chatty, examples, {"tatqa": Scorer("tatqa")}, SamplingParams(max_new_tokens=8))
    assert ts_metrics(official)["acc_or"] == 0.0  # the official scorer reads the whole sentence as the answer


def test_contains_match_refuses_a_reply_that_copies_the_supplied_row(tmp_path, tatqa_file):
    # The row strategy's user text ("The missing row reads: ...; 2019: 1,200; ...") holds the gold value and no other
    # value of its column: only the copy guard stands between a parrot and a counted recovery.
    build(tmp_path / "b", tatqa_file, test_fraction=1.0, strategies=["row"])
    examples = read_examples(tmp_path / "b" / "test.jsonl")
    outcomes, records = play_pairs(Parrot(), examples, {"tatqa": Scorer("tatqa", match="contains")},
                                   SamplingParams(max_new_tokens=8))
    q1 = next(i for i, r in enumerate(records) if r["id"] == "q1:row")
    assert "1,200" in records[q1]["clarification_final"] and "1,200" in records[q1]["correction_final"]
    assert not outcomes[q1].clarification_correct and not outcomes[q1].correction_correct
    assert ts_metrics(outcomes)["acc_cl"] == ts_metrics(outcomes)["acc_co"] == 0.0
