"""The information-ablation strategies on hand-made tables: each removes exactly what it records, leaves the rest
byte-identical, is deterministic from the seed, refuses what it cannot ablate (by reason), and verifies by lookup."""

import pytest

from clarifylab.data.ablation_strategies import (Ablated, NeededInfo, Refusal, ablate, ablated_example, accept_rewrite,
                                                 check_strategies, identify_needed_info, question_spans)
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.table_tasks import TableTask, lookup_cells, normalize_value, tatqa_lookup_values
from clarifylab.errors import ConfigError

TABLE = (("", "2019", "2018"),
         ("Revenue", "1,200", "1,000"),
         ("Cost of sales", "(700)", "650"),
         ("Net income", "500", "350"))


def tatqa_task(question="What was the revenue in 2019?", answer_type="span", answer=("1,200",), derivation="",
               answer_from="table", table=TABLE, paragraphs=("Revenue grew strongly.",), uid="q1"):
    meta = {"conversation_id": "t1", "answer_type": answer_type, "answer": list(answer), "derivation": derivation,
            "answer_from": answer_from, "scale": "", "goal_answer": list(answer), "goal_scale": "",
            "goal_answer_type": answer_type, "goal_derivation": derivation}
    example = Example(id=uid, task="tatqa", context="ctx", history=[Turn("user", question)], response=answer[0],
                      action=Action.ANSWER, goal=[answer[0]], meta=meta)
    return TableTask(example, table, paragraphs, question, tatqa_lookup_values(meta))


def test_normalize_and_lookup():
    assert normalize_value(" $1,200 ") == normalize_value("1200.0") == "1200.0"
    assert normalize_value("(700)") == "700.0" and normalize_value("Net Income") == "netincome"
    assert lookup_cells(TABLE, ["1200"]) == [(1, 1)]
    assert tatqa_lookup_values({"answer_type": "arithmetic", "answer": 200, "derivation": "1,200-1,000"}) == \
        ("1,200", "1,000")
    assert tatqa_lookup_values({"answer_type": "count", "answer": "2", "derivation": "Revenue##Cost"}) == \
        ("Revenue", "Cost")


def test_identify_needed_info_rule():
    needed = identify_needed_info(tatqa_task())
    assert (needed.column, needed.row, needed.cell) == (1, 1, (1, 1))
    assert (needed.span, needed.span_kind) == (" in 2019", "period")


def test_column_removes_exactly_the_recorded_column():
    task = tatqa_task()
    out = ablate(task, "column", identify_needed_info(task))
    assert isinstance(out, Ablated)
    assert out.table == (("", "2018"), ("Revenue", "1,000"), ("Cost of sales", "650"), ("Net income", "350"))
    assert out.removed.column == 1 and out.removed.header == "2019"
    assert out.removed.values == [["Revenue", "1,200"], ["Cost of sales", "(700)"], ["Net income", "500"]]
    # Putting the recorded column back gives the source table byte for byte; nothing else changed.
    rebuilt = tuple(row[:1] + (cell,) + row[1:] for row, cell in
                    zip(out.table, ["2019"] + [v for _, v in out.removed.values]))
    assert rebuilt == TABLE
    assert out.paragraphs == task.paragraphs and out.question == task.question
    assert out.removed.user_text == "The column '2019' holds: Revenue: 1,200; Cost of sales: (700); Net income: 500."


def test_row_removes_exactly_the_recorded_row():
    task = tatqa_task()
    out = ablate(task, "row", identify_needed_info(task))
    assert out.table == TABLE[:1] + TABLE[2:]
    assert out.removed.row == 1 and out.removed.header == "Revenue"
    assert out.removed.values == [["column 1", "Revenue"], ["2019", "1,200"], ["2018", "1,000"]]
    assert tuple(v for _, v in out.removed.values) == TABLE[1]
    assert out.question == task.question and out.paragraphs == task.paragraphs


def test_value_remove_and_alter():
    task = tatqa_task()
    needed = identify_needed_info(task)
    out = ablate(task, "value", needed)
    assert out.table == (TABLE[0], ("Revenue", "", "1,000"), TABLE[2], TABLE[3])
    assert out.removed.values == [["Revenue / 2019", "1,200"]] and out.removed.new_value is None
    altered = ablate(task, "value", needed, seed=0, value_mode="alter")
    assert altered.table[1][1] in {"(700)", "500"} and altered.table[1][1] == altered.removed.new_value
    assert [altered.table[r] for r in (0, 2, 3)] == [TABLE[0], TABLE[2], TABLE[3]]
    # Deterministic from the seed: the same seed, the same choice, every time.
    assert all(ablate(task, "value", needed, 0, "alter").table == altered.table for _ in range(3))
    choices = {ablate(task, "value", needed, s, "alter").removed.new_value for s in range(20)}
    assert choices == {"(700)", "500"}


def test_question_rule_is_reversible():
    task = tatqa_task()
    out = ablate(task, "question", identify_needed_info(task))
    assert out.question == "What was the revenue?" and out.table == TABLE
    r = out.removed
    assert (r.what, r.span, r.position) == ("period", " in 2019", 20)
    assert out.question[:r.position] + r.span + out.question[r.position:] == task.question
    assert r.user_text == "I mean in 2019."


def test_question_entity_and_teacher_rewrite():
    task = tatqa_task(question="How much was Net income?", answer=("500",), uid="q2")
    spans = question_spans(task)
    assert [(k, task.question[s:e]) for k, s, e in spans] == [("entity", "Net income")]
    needed = identify_needed_info(task)
    assert accept_rewrite(task, needed, "How much was it?").question == "How much was it?"
    assert accept_rewrite(task, needed, "How much was Net income?") == Refusal("question", "teacher_rewrite_rejected")


def test_refusals_by_reason():
    # The answer is in the text only: no table strategy applies.
    text_task = tatqa_task(answer=("strongly",), answer_from="text")
    needed = identify_needed_info(text_task)
    assert ablate(text_task, "column", needed) == Refusal("column", "answer_from_text")
    # The answer value repeats in another column: dropping one column leaves it derivable.
    dup = (("", "2019", "2018"), ("Revenue", "1,200", "1,200"), ("Cost", "5", "6"))
    task = tatqa_task(table=dup, paragraphs=())
    assert ablate(task, "column", identify_needed_info(task)) == Refusal("column", "answer_still_derivable")
    # Nothing to cut from a question without a period, entity or unit; no answer cell anywhere.
    bare = tatqa_task(question="What is it?", answer=("zzz",), uid="q3")
    assert identify_needed_info(bare) == Refusal("identify", "no_answer_cell_or_span")
    # A one-data-row table cannot lose its row.
    small = tatqa_task(table=TABLE[:2], paragraphs=())
    assert ablate(small, "row", identify_needed_info(small)) == Refusal("row", "single_row")
    # Arithmetic: one operand gone is enough.
    arith = tatqa_task(question="What is the change in revenue between 2018 and 2019?", answer_type="arithmetic",
                       answer=("200",), derivation="1,200-1,000", paragraphs=())
    out = ablate(arith, "row", identify_needed_info(arith))
    assert isinstance(out, Ablated) and out.removed.header == "Revenue"


def test_ablated_example_keeps_gold_and_records_removal():
    task = tatqa_task()
    out = ablate(task, "column", identify_needed_info(task))
    example = ablated_example(out)
    assert example.id == "q1:column" and example.goal == task.example.goal and example.response == "1,200"
    assert "2019" not in example.context and example.history[-1].content == task.question
    assert example.meta["ts"]["removed"]["header"] == "2019" and example.meta["goal_answer"] == ["1,200"]


def test_check_strategies():
    assert check_strategies(["row", "column"]) == ["row", "column"]
    with pytest.raises(ConfigError):
        check_strategies(["column", "columns"])
    assert NeededInfo(None, None, None, None, None).source == "rule"
