"""The curriculum build on a hand-made TAT-QA table with a scripted student and teacher: the student-fails filter,
the clarification and correction dialogues, the recovery filter, yields, output files, and a killed build resumed."""

import json

import pytest

from clarifylab.data.jsonl import read_examples
from clarifylab.data.schema import Action
from clarifylab.errors import ConfigError

from ts_scripted import STRATEGIES, ScriptedStudent, build


def records(out):
    return [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]


def test_filters_and_dialogues(tmp_path, tatqa_file):
    out = tmp_path / "build"
    result = build(out, tatqa_file)
    expected = {"sources": 4, "identified": 4, "ablated": 4, "student_fails": 3, "clarification_asked": 3, "clarification_guided": 0,
                "clarification_targeted": 3, "clarification_recovered": 2, "correction_recovered": 2}
    # The question strategy also takes the memorized key's year away from q4: the student fails it and recovers.
    question = {**expected, "student_fails": 4, "clarification_asked": 4, "clarification_targeted": 4,
                "clarification_recovered": 3, "correction_recovered": 3}
    assert result["yield"] == {"column": expected, "question": question}
    by_id = {r["id"]: r for r in records(out)}
    # The scripted student answers from the table: it fails once the needed column is gone ...
    assert by_id["q1:column"]["original_answer"] == "1,200" and by_id["q1:column"]["ablated_answer"] == "I do not know."
    assert by_id["q1:column"]["identified_by"] == "teacher" and by_id["q1:column"]["removed"]["header"] == "2019"
    # ... and recovers once the user supplies it (clarification and correction alike).
    assert by_id["q1:column"]["clarification"]["first"] == "What are the 2019 column values?"
    assert by_id["q1:column"]["clarification"]["final"] == "1,200"
    assert by_id["q1:column"]["correction"]["final"] == "1,200" and by_id["q1:column"]["kept"] == ["clarification",
                                                                                                   "correction"]
    assert by_id["q1:question"]["clarification"]["first"] == "Which year do you mean?"
    # Student-fails filter: the memorized answer survives the ablation -> dropped.
    assert (by_id["q4:column"]["status"], by_id["q4:column"]["reason"]) == ("dropped", "student_still_correct")
    # Recovery filter: the stubborn student ignores the user's information -> dropped.
    assert (by_id["q3:column"]["status"], by_id["q3:column"]["reason"]) == ("dropped", "student_did_not_recover")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["dropped"]["column"] == {"student_did_not_recover": 1, "student_still_correct": 1}
    train = read_examples(out / "train.jsonl")
    assert len(train) == 5 and all(e.action is Action.CLARIFY for e in train)
    q1 = next(e for e in train if e.id == "q1:column:clarification")
    assert q1.response == "What are the 2019 column values?" and q1.goal == ["1,200"]
    assert q1.clarifications[0].reply.startswith("The column '2019' holds: Revenue: 1,200;")
    assert "2019" not in q1.context.split("Text:")[0]
    corrections = read_examples(out / "correction.jsonl")
    q1c = next(e for e in corrections if e.id == "q1:column:correction")
    assert [t.role for t in q1c.history] == ["user", "assistant", "user"]
    assert q1c.history[1].content == "I do not know." and q1c.response == "1,200"


def test_original_filter_and_rule_judge(tmp_path, tatqa_file):
    # A student that cannot answer q2 even on the original table: require_original_correct drops it.
    student = ScriptedStudent(memorized={"cost of sales": "999"})
    result = build(tmp_path / "a", tatqa_file, student=student, judge="rule", strategies=["column"])
    assert result["yield"]["column"]["student_fails"] == 3
    by_id = {r["id"]: r for r in records(tmp_path / "a")}
    assert by_id["q2:column"]["reason"] == "student_fails_original"
    result = build(tmp_path / "b", tatqa_file, student=ScriptedStudent(memorized={"cost of sales": "999"}),
                   judge="rule", strategies=["column"], require_original_correct=False)
    assert result["yield"]["column"]["student_fails"] == 4


def test_refused_items_are_logged_and_counted(tmp_path):
    """A question whose answer is in the text only: every table strategy refuses it (by reason), the question
    strategy still applies; the build finalizes with the refused records in the log."""
    from ts_scripted import write_tatqa

    source = write_tatqa(tmp_path / "t.json", questions=[("q1", "What was the revenue in 2019?", "1,200"),
                                                         ("q5", "What did the company do in 2019?", "grew")])
    result = build(tmp_path / "r", source, strategies=["column", "question"])
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["counts"]["dropped"]["column"]["answer_not_in_table"] == 1
    assert result["yield"]["column"]["ablated"] == 1 and result["yield"]["question"]["ablated"] == 2


def test_test_split_is_the_benchmark(tmp_path, tatqa_file):
    build(tmp_path / "b", tatqa_file, test_fraction=1.0)
    test = read_examples(tmp_path / "b" / "test.jsonl")
    assert sorted(e.id for e in test) == sorted(f"{q}:{s}" for q in ("q1", "q2", "q3", "q4") for s in STRATEGIES)
    q1 = next(e for e in test if e.id == "q1:question")
    assert q1.history[0].content == "What was the revenue?"
    assert q1.meta["ts"]["original_question"] == "What was the revenue in 2019?"
    assert "2019" in q1.meta["ts"]["original_context"] and read_examples(tmp_path / "b" / "train.jsonl") == []


def test_killed_build_resumes_without_duplicates_or_losses(tmp_path, tatqa_file):
    clean = tmp_path / "clean"
    build(clean, tatqa_file)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        build(out, tatqa_file, student=ScriptedStudent(memorized={"revenue in 2018": "1,000"},
                                                       stubborn=("net income",), fail_after=7))
    partial = records(out)
    assert 0 < len(partial) < 8
    with (out / "progress.jsonl").open("a") as handle:  # a kill in the middle of a write
        handle.write('{"id": "q9:col')
    build(out, tatqa_file)
    resumed = records(out)
    assert len({r["id"] for r in resumed}) == len(resumed) == 8  # 4 questions x 2 strategies
    def untimed(rs):
        return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rs), key=lambda r: r["id"])

    assert untimed(resumed) == untimed(records(clean))
    assert all(r["seconds"] >= 0 for r in resumed)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build_s"] == round(sum(r["seconds"] for r in resumed), 1)
    for name in ("train", "correction", "clarification"):
        assert (out / f"{name}.jsonl").read_bytes() == (clean / f"{name}.jsonl").read_bytes()


def test_changed_settings_are_refused(tmp_path, tatqa_file):
    build(tmp_path / "c", tatqa_file)
    with pytest.raises(ConfigError, match="other settings"):
        build(tmp_path / "c", tatqa_file, judge="rule")


def test_a_student_that_never_asks_is_guided_to_the_question_when_the_guide_is_on(tmp_path, tatqa_file):
    mute = dict(memorized={"revenue in 2018": "1,000"}, stubborn=("net income",), asks=False)
    result = build(tmp_path / "none", tatqa_file, student=ScriptedStudent(**mute), strategies=["column"])
    unguided = result["yield"]["column"]
    assert (unguided["clarification_asked"], unguided["clarification_recovered"]) == (0, 0)
    assert read_examples(tmp_path / "none" / "train.jsonl") == []
    result = build(tmp_path / "rule", tatqa_file, student=ScriptedStudent(**mute), strategies=["column"],
                   clarify_guide="rule")
    # q1, q2, q3 fail after ablation; all three are guided; the stubborn q3 does not recover.
    assert result["yield"]["column"] == {**unguided, "clarification_guided": 3, "clarification_targeted": 3,
                                         "clarification_recovered": 2}
    by_id = {r["id"]: r for r in records(tmp_path / "rule")}
    dialogue = by_id["q1:column"]["clarification"]
    assert dialogue["asked"] is False and dialogue["guided"] is True and dialogue["final"] == "1,200"
    assert dialogue["question"] == "The table has no 2019 column. Could you tell me the 2019 values?"
    train = {e.id: e for e in read_examples(tmp_path / "rule" / "train.jsonl")}
    assert sorted(train) == ["q1:column:clarification", "q2:column:clarification"]
    assert train["q1:column:clarification"].response == dialogue["question"]
    assert train["q1:column:clarification"].meta["ts"]["guided"] is True
    with pytest.raises(ConfigError, match="clarify_guide"):
        build(tmp_path / "bad", tatqa_file, clarify_guide="teacher")


def test_contains_match_reads_answers_in_sentences_and_official_does_not(tmp_path, tatqa_file):
    chatty = dict(memorized={"revenue in 2018": "1,000"}, stubborn=("net income",), sentence="It was {} in total.")
    official = build(tmp_path / "official", tatqa_file, student=ScriptedStudent(**chatty), strategies=["column"])
    assert official["yield"]["column"]["student_fails"] == 0  # no original answer is read as correct
    assert {r["reason"] for r in records(tmp_path / "official")} == {"student_fails_original"}
    contains = build(tmp_path / "contains", tatqa_file, student=ScriptedStudent(**chatty), strategies=["column"],
                     match="contains")
    plain = build(tmp_path / "plain", tatqa_file, strategies=["column"])
    assert contains["yield"] == plain["yield"]  # the sentences count exactly as the bare answers do
    by_id = {r["id"]: r for r in records(tmp_path / "contains")}
    assert by_id["q1:column"]["correction"]["final"] == "It was 1,200 in total."
    assert by_id["q1:column"]["example"]["meta"]["answer_distractors"] == ["700", "500"]
