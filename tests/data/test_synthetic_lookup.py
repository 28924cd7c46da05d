"""The demo's task (dataset=synthetic_lookup): lookups answerable from the table exactly, replies that supply exactly
the missing slot, the kinds / layout / size options, and the fully specified view of an example."""

from __future__ import annotations

import random

import pytest

from clarifylab.data.schema import Action
from clarifylab.data.synthetic.phrasing import render_question
from clarifylab.data.synthetic.questions import QuestionSpec, answer_for, variants_of
from clarifylab.data.synthetic.table import SyntheticTable, generate_table
from clarifylab.data.synthetic_tables import build_synthetic_corpus, check_synthetic_design, fully_specified, \
    write_synthetic_corpus
from clarifylab.errors import ConfigError

DEMO = {"kinds": ["lookup"], "layout": "sentences", "entities_per_table": 2, "metrics_per_table": 2,
        "whole_numbers": True}
SMALL = {"train": 6, "validation": 1, "test": 3}


def hand_table() -> SyntheticTable:
    """Varnex / Tolitek x revenue / net income x 2019-2021, values in tenths of $ million."""
    values = {("Varnex", "revenue"): (412, 455, 470), ("Varnex", "net income"): (31, 40, 38),
              ("Tolitek", "revenue"): (800, 760, 910), ("Tolitek", "net income"): (60, 75, 90)}
    tenths = {(e, m, y): v for (e, m), row in values.items() for y, v in zip((2019, 2020, 2021), row)}
    return SyntheticTable("t", ("Varnex", "Tolitek"), ("revenue", "net income"), (2019, 2020, 2021), tenths)


def test_hand_checked_lookups_read_one_cell_and_its_sentence():
    table = hand_table()
    assert answer_for(table, QuestionSpec("lookup", metric="net income", year=2020, entity="Tolitek")) == "7.5"
    assert answer_for(table, QuestionSpec("lookup", metric="revenue", year=2021, entity="Varnex")) == "47"
    assert answer_for(table, QuestionSpec("lookup", metric="revenue", year=2019, entity="Varnex")) == "41.2"
    lines = table.sentences().splitlines()
    assert len(lines) == 12
    assert lines[0] == "Varnex's revenue in 2019 was 41.2 million."
    assert "Tolitek's net income in 2020 was 7.5 million." in lines
    assert "Varnex's revenue in 2021 was 47 million." in lines      # written as the answer is: no trailing ".0"
    assert table.render("grid") == table.linearize()
    with pytest.raises(ValueError, match="layout"):
        table.render("prose")


def test_whole_numbers_round_every_cell_and_keep_the_table_shape():
    exact = generate_table("t", random.Random(3), 2, 2)
    whole = generate_table("t", random.Random(3), 2, 2, whole_numbers=True)
    assert (exact.entities, exact.metrics, exact.years) == (whole.entities, whole.metrics, whole.years)
    for key, tenths in whole.tenths.items():
        assert tenths % 10 == 0 and abs(tenths - exact.tenths[key]) <= 5 + 10 * (exact.tenths[key] < 10)


def test_variants_of_kinds():
    assert variants_of(None) is None
    assert variants_of(["lookup"]) == ("lookup",)
    assert variants_of(["sum", "ratio"]) == ("ratio_metrics", "ratio_years", "sum")
    for bad in (["lookup", "lookup"], ["median"], []):
        with pytest.raises(ValueError):
            variants_of(bad)


def test_every_lookup_is_answerable_from_its_context_exactly():
    corpus = build_synthetic_corpus(tables_per_split=SMALL, **DEMO)
    examples = [e for split in corpus.values() for e in split]
    assert len(examples) == 40 and {e.meta["kind"] for e in examples} == {"lookup"}
    for example in examples:
        spec = example.meta["question"]
        sentence = f"{spec['entity']}'s {spec['metric']} in {spec['year']} was {example.goal[0]} million."
        assert example.context.count(sentence) == 1, example.id              # the answer is one stated cell
        assert len(example.context.splitlines()) == 12                     # 2 companies x 2 metrics x 3 years
        assert "." not in example.goal[0]                                  # whole $ million
        assert len(example.history) == 1                                   # lookups only: no earlier exchange


def test_the_reply_supplies_exactly_the_missing_slot():
    corpus = build_synthetic_corpus(tables_per_split=SMALL, **DEMO)
    clarify = [e for split in corpus.values() for e in split if e.action is Action.CLARIFY]
    assert len(clarify) == 20 and {e.meta["removed_slot"] for e in clarify} == {"entity", "metric", "year"}
    for example in clarify:
        question, reply = example.history[-1].content, example.clarifications[0].reply
        value, options = example.meta["removed_value"], example.meta["options"]
        assert value in options and value not in question                 # the question leaves it out ...
        assert value.lower() in reply.lower()                              # ... the reply names it ...
        assert [o for o in options if o.lower() in reply.lower()] == [value]   # ... and no other option
        assert example.clarifications[0].answer == example.goal[0]
        full = fully_specified(example)                                    # asked in full: every slot named
        spec = example.meta["question"]
        assert full.action is Action.ANSWER and full.response == example.goal[0] and not full.clarifications
        assert spec["entity"] in full.history[-1].content and str(spec["year"]) in full.history[-1].content
        assert spec["metric"] in full.history[-1].content
        assert full.history[-1].content == fully_specified(example).history[-1].content   # stable wording


def test_hand_checked_question_wordings_put_the_year_first():
    spec = QuestionSpec("lookup", metric="revenue", year=2020, entity="Varnex")
    wordings = {render_question(spec, random.Random(seed)) for seed in range(30)}
    assert wordings == {"What was Varnex's revenue in 2020?", "In 2020, how much revenue did Varnex report?",
                        "Give me Varnex's revenue for 2020."}
    assert render_question(spec, random.Random(0), "year").count("2020") == 0


def test_design_options_are_checked_and_recorded(tmp_path):
    with pytest.raises(ConfigError, match="kinds"):
        build_synthetic_corpus(kinds=["median"])
    with pytest.raises(ConfigError, match="layout"):
        build_synthetic_corpus(layout="html")
    with pytest.raises(ConfigError, match="entities_per_table"):
        build_synthetic_corpus(entities_per_table=1)
    write_synthetic_corpus(tmp_path, tables_per_split=SMALL, **DEMO)
    check_synthetic_design(tmp_path, DEMO)                                 # same design: fine
    with pytest.raises(ConfigError, match="written with"):
        check_synthetic_design(tmp_path, {**DEMO, "layout": "grid"})


def test_default_corpus_is_unchanged_by_the_new_options():
    default = build_synthetic_corpus(tables_per_split=SMALL)
    explicit = build_synthetic_corpus(tables_per_split=SMALL, kinds=None, layout="grid")
    assert [e.to_dict() for e in default["train"]] == [e.to_dict() for e in explicit["train"]]
    assert {e.meta["kind"] for split in default.values() for e in split} >= {"lookup", "difference"}
