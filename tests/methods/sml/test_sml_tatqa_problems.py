"""SML problems from TAT-QA (dataset=tatqa): fully specified questions, solutions, and sharded twins cut with
the TS span finder; hand-checked on tests/fixtures/tatqa_small.json."""

import pytest
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.data.table_tasks import load_tatqa_tasks
from clarifylab.errors import DataFormatError
from clarifylab.methods.sml.dialogue import heuristic_scorer
from clarifylab.methods.sml.problems import build_problems, load_problems
from clarifylab.methods.sml.teacher import leaks_answer

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "tatqa_small.json"


def tatqa_node():
    node = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "tatqa.yaml")
    node.merge_with({"path": str(FIXTURE)})
    return node


def test_tatqa_problems_hand_checked():
    problems = {p.id: p for p in load_problems(tatqa_node(), "all", {}, seed=0)}
    # q-a4 / q-a5 (which / how many years), q-b2, q-b3 name no period, table entity or unit: no sharded form
    assert list(problems) == ["q-a1", "q-a2", "q-a3", "q-a6", "q-b1"]
    a1, a2, b1 = problems["q-a1"], problems["q-a2"], problems["q-b1"]
    assert (a1.task, a1.question, a1.answer) == ("tatqa", "What was the revenue in 2019?", "$ 1,200.5")
    assert a1.solution == "The question is: What was the revenue in 2019? The correct answer is $ 1,200.5 million."
    assert [(s.slot, s.text) for s in a1.shards] == [("intent", "What was the?"), ("entity", "It is about revenue."),
                                                      ("period", "I mean in 2019.")]
    assert a2.answer == "-550" and a2.example.goal == ["-300 - 250 = -550 thousand"]
    assert [(s.slot, s.text) for s in a2.shards] == [
        ("intent", "What was the change in to?"), ("period", "I mean from 2018."), ("period", "I mean 2019."),
        ("entity", "It is about cost.")]
    assert problems["q-a3"].answer == "-220"  # -220.0 in the file: the bare number
    assert [(s.slot, s.text) for s in b1.shards] == [("intent", "What is the margin?"),
                                                      ("entity", "It is about retail.")]
    assert "Revenue | $ 1,200.5 | $1,000.0" in a1.context  # the student reads the table


def test_tatqa_shards_reveal_each_cut_span_once_and_the_first_turn_is_underspecified():
    for problem in load_problems(tatqa_node(), "all", {}, seed=3):
        first, rest = problem.shards[0].text, problem.shards[1:]
        assert rest and first != problem.question
        for shard in rest:
            span = shard.text.removeprefix("I mean ").removeprefix("It is about ").rstrip(".")
            assert span.lower() in problem.question.lower() and span.lower() not in first.lower()
        assert len({s.text for s in rest}) == len(rest)


def test_tatqa_problems_are_scored_by_the_tatqa_h_and_leaks_are_numeric():
    problems = load_problems(tatqa_node(), "all", {}, seed=0)
    scorer = heuristic_scorer({}, None)
    assert scorer(problems[:2], ["$1,200.5 million", "-550 thousand"]) == [True, True]
    assert scorer(problems[:2], ["$1,000.0 million", "550 thousand"]) == [False, False]
    assert leaks_answer("The change was -550 thousand.", problems[1].answer)
    assert not leaks_answer("Look at the cost row for both years.", problems[1].answer)


def test_tatqa_examples_need_their_grids_and_max_problems_counts_problems():
    tasks = load_tatqa_tasks(FIXTURE)
    with pytest.raises(DataFormatError, match="no table grid"):
        build_problems([t.example for t in tasks], seed=0)
    problems = build_problems([t.example for t in tasks], 0, max_problems=4, tasks={t.id: t for t in tasks})
    assert [p.id for p in problems] == ["q-a1", "q-a2", "q-a3", "q-a6"]
    assert [p.question for p in load_problems(tatqa_node(), "all", {}, seed=1)] == [
        p.question for p in load_problems(tatqa_node(), "all", {}, seed=2)]  # the seed orders shards only
