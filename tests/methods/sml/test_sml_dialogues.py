"""Teacher feedback never carries the answer; the builders keep, drop and count dialogues; Q-priming's odds."""

import json
import random

import pytest
from omegaconf import OmegaConf

from clarifylab.data.jsonl import read_examples
from clarifylab.methods.sml import teacher as T
from clarifylab.methods.sml.builders import generate_q_priming, generate_sml_dialogues
from clarifylab.methods.sml.dialogue import draws_replacement, heuristic_scorer, replacement_probability, run_dialogues
from sml_scripted import Scripted, dataset_node, problems


def test_leak_check():
    assert T.leaks_answer("Close, but it should be 12.50 million.", "12.5")
    assert T.leaks_answer("The change is -3.25", "-3.25")
    assert T.leaks_answer("You got 1,000", "1000")
    assert not T.leaks_answer("Use the 2019 column, not 2020.", "12.5")
    assert not T.leaks_answer("Look at revenue again.", "12.5")


def student_wrong_then_right(by_question, right_at=2):
    """Answers 0.01 until the teacher has spoken ``right_at - 1`` times, then the gold answer."""
    def reply(conversation):
        spoken = sum(m["role"] == "assistant" for m in conversation)
        return by_question[conversation[1]["content"]] if spoken + 1 >= right_at else "It is 0.01."
    return reply


def test_feedback_never_contains_the_answer_and_leaks_are_replaced_or_dropped():
    probs = problems(4)
    by_question = {p.question: p.answer for p in probs}
    student = Scripted(student_wrong_then_right(by_question, right_at=3))
    honest = Scripted(lambda c: "Check the year you used.")
    dialogues = run_dialogues(student, honest, probs, heuristic_scorer(), max_student_turns=4)
    assert [d.success_turn for d in dialogues] == [3, 3, 3, 3]
    for d in dialogues:
        teacher_turns = [m["content"] for m, a in zip(d.turns, d.authors) if a == "teacher"]
        assert len(teacher_turns) == 2 and not any(T.leaks_answer(t, d.problem.answer) for t in teacher_turns)
    # the teacher's private solution is in its prompt, never in the student's
    assert all(p.solution in c[0]["content"] for c, p in zip(honest.seen, probs * 2))
    assert not any(p.solution in m["content"] for c in student.seen for m in c for p in probs)

    def leaky(conversation):  # gives the answer away (reads it from its private system prompt)
        return "The answer is " + conversation[0]["content"].split("The correct answer is ")[1].rstrip(".")

    replaced = run_dialogues(Scripted(student_wrong_then_right(by_question, 3)), Scripted(leaky), probs,
                             heuristic_scorer(), max_student_turns=4, leak_policy="replace")
    for d in replaced:
        assert d.leaks == 2 and not d.leaked
        assert [m["content"] for m, a in zip(d.turns, d.authors) if a == "teacher"] == [T.FALLBACK_FEEDBACK] * 2
    dropped = run_dialogues(Scripted(student_wrong_then_right(by_question, 3)), Scripted(leaky), probs,
                            heuristic_scorer(), max_student_turns=4, leak_policy="drop")
    assert all(d.leaked and d.leaks == 1 and d.success_turn is None for d in dropped)


def test_builder_drops_and_counts_leaking_dialogues_and_resumes(tmp_path):
    dataset = dataset_node(tmp_path)
    probs = problems(8) + problems(4, "validation")
    by_question = {p.question: p.answer for p in probs}
    # the teacher leaks ("It is <answer>.") on the first table's problems, and is honest elsewhere
    student = Scripted(student_wrong_then_right(by_question, 2))
    honest_or_leaky = Scripted(lambda c: ("It is " + c[0]["content"].split("The correct answer is ")[1].rstrip("."))
                               if by_question[next(q for q in by_question if q in c[0]["content"])] in
                               {p.answer for p in probs[:4]} else "Check the year.")
    out = tmp_path / "out"
    counts = generate_sml_dialogues(str(out), dataset, student=None, paths={"cache_dir": str(tmp_path)},
                                    max_problems=None, backends=(student, honest_or_leaky), batch_size=3)
    manifest = json.loads((out / "manifest.json").read_text())
    train = manifest["counts"]["train"]
    leaky_ids = {p.id for p in probs[:8] if p.answer in {q.answer for q in probs[:4]}}
    assert train["dropped_leak"] == len(leaky_ids) == train["leaking_teacher_messages"]
    assert train["kept"] == 8 - len(leaky_ids) and counts["train"]["kept"] == train["kept"]
    kept = read_examples(out / "train.jsonl")
    assert {e.id.rsplit("-s", 1)[0] for e in kept} == {p.id for p in probs[:8]} - leaky_ids
    for example in kept:  # question, wrong attempt, feedback; response = the correct attempt
        assert [t.role for t in example.history] == ["user", "assistant", "user"]
        assert not T.leaks_answer(example.history[2].content, example.goal[0])
        assert example.response == example.goal[0]
    before = len(student.seen)
    generate_sml_dialogues(str(out), dataset, student=None, paths={"cache_dir": str(tmp_path)},
                           backends=(student, honest_or_leaky), batch_size=3)
    assert len(student.seen) == before  # resumed: every dialogue was logged
    with pytest.raises(Exception, match="other settings"):
        generate_sml_dialogues(str(out), dataset, student=None, paths={"cache_dir": str(tmp_path)},
                               backends=(student, honest_or_leaky), max_student_turns=3)


def test_q_priming_probability_matches_base_to_the_turn():
    for turn in (1, 2, 3, 4):
        assert replacement_probability(turn, 0.75) == pytest.approx(0.75 ** turn)
        rng = random.Random(f"draws/{turn}")
        n = 40_000
        share = sum(draws_replacement(rng, turn, 0.75) for _ in range(n)) / n
        assert share == pytest.approx(0.75 ** turn, abs=4 * (0.75 ** turn * (1 - 0.75 ** turn) / n) ** 0.5)


def test_q_priming_replaces_wrong_turns_with_teacher_questions_and_keeps_history_public(tmp_path):
    dataset = dataset_node(tmp_path)
    probs = problems(8)
    by_question = {p.question: p.answer for p in probs}
    student = Scripted(student_wrong_then_right(by_question, 3))
    teacher = Scripted(lambda c: "Which year should I use?" if "ask you now" in c[-1]["content"]
                       else "Use the later year.")
    out = tmp_path / "qp"
    generate_q_priming(str(out), dataset, student=None, paths={"cache_dir": str(tmp_path)}, splits=["train"],
                       q_priming_base=1.0, backends=(student, teacher))
    kept = read_examples(out / "train.jsonl")
    assert len(kept) == 8
    for example in kept:  # both wrong turns (1, 2) replaced with probability 1.0 ** t
        assert [t.content for t in example.history[1::2]] == ["Which year should I use?"] * 2
        assert example.meta["sml"]["replaced_turns"] == [1, 2]
    # the student never saw its replaced wrong attempts nor the teacher's prompt
    later = [c for c in student.seen if len(c) > 2]
    assert later and not any("It is 0.01." in m["content"] for c in later for m in c)
    assert not any("Private solution" in m["content"] for c in student.seen for m in c)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train"]["replaced_by_turn"] == {"1": 8, "2": 8}
