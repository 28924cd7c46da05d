"""The embedded synthetic_tables corpus: exact answers, real ambiguity, determinism, splits, JSONL."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from clarifylab.data.jsonl import read_examples
from clarifylab.data.schema import Action, Example
from clarifylab.data.synthetic.phrasing import QUESTION_TEMPLATES, clarifying_question, render_question
from clarifylab.data.synthetic.questions import HISTORY_VARIANTS_LEAVING_OPEN, QuestionSpec, answer_for
from clarifylab.data.synthetic.table import SyntheticTable, format_answer
from clarifylab.data.synthetic_tables import (
    SPLITS,
    build_synthetic_corpus,
    load_synthetic_split,
    write_synthetic_corpus,
)
from clarifylab.errors import ConfigError, DataNotFoundError


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[Example]]:
    return build_synthetic_corpus(seed=0)


@pytest.fixture(scope="module")
def small_table() -> SyntheticTable:
    values = {("Acme", "revenue"): (1000, 1105, 1200), ("Acme", "net income"): (100, 125, 90),
              ("Borel", "revenue"): (500, 452, 601), ("Borel", "net income"): (55, 40, 66)}
    tenths = {(e, m, y): v for (e, m), row in values.items() for y, v in zip((2020, 2021, 2022), row, strict=True)}
    return SyntheticTable("hand-t000", ("Acme", "Borel"), ("revenue", "net income"), (2020, 2021, 2022), tenths)


# --- independent re-implementation: parse the linearized table, compute with Decimal --------------------

def parse_context(context: str) -> dict[tuple[str, str, int], Decimal]:
    """(company, metric in lower case, year) -> value, read back from the text the model sees."""
    title, header, *rows = context.split("\n")
    assert "$ million" in title
    columns = header.split("|")
    assert columns[:2] == ["Company", "Metric"]
    years = [int(c) for c in columns[2:]]
    cells = {}
    for row in rows:
        entity, metric, *values = row.split("|")
        assert len(values) == len(years), row
        for year, value in zip(years, values, strict=True):
            assert re.fullmatch(r"\d+\.\d", value), value
            cells[(entity, metric.lower(), year)] = Decimal(value)
    return cells


def canonical(value: Decimal) -> str:
    text = format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def recompute(cells: dict[tuple[str, str, int], Decimal], q: dict) -> str:
    """The answer of question record ``q`` (``meta["question"]``), computed from parsed cells."""
    def cell(metric: str, year: int) -> Decimal:
        return cells[(q["entity"], metric.lower(), year)]

    if q["kind"] == "lookup":
        return canonical(cell(q["metric"], q["year"]))
    if q["kind"] == "difference":
        return canonical(cell(q["metric"], q["end_year"]) - cell(q["metric"], q["year"]))
    if q["kind"] == "sum":
        return canonical(sum(v for (_, m, y), v in cells.items() if m == q["metric"].lower() and y == q["year"]))
    with localcontext() as ctx:
        ctx.prec = 40
        if q["denominator"] is not None:
            ratio = cell(q["metric"], q["year"]) / cell(q["denominator"], q["year"])
        else:
            ratio = cell(q["metric"], q["end_year"]) / cell(q["metric"], q["year"])
    return canonical(ratio)


# --- hand-computed cases ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (Decimal("12.50"), "12.5"), (Decimal("-3.25"), "-3.25"), (Decimal(5) / Decimal(6), "0.83"), (100, "100"),
    (Decimal("0.125"), "0.13"), (Decimal("-0.125"), "-0.13"), (Decimal("-0.004"), "0"), (Decimal("2.005"), "2.01"),
])
def test_format_answer_rounds_half_away_from_zero_without_trailing_zeros(value, expected):
    from fractions import Fraction

    assert format_answer(Fraction(value)) == expected


def test_answers_on_a_hand_computed_table(small_table):
    cases = [
        (QuestionSpec("lookup", "revenue", 2021, entity="Acme"), "110.5"),
        (QuestionSpec("difference", "net income", 2021, entity="Acme", end_year=2022), "-3.5"),  # 9.0 - 12.5
        (QuestionSpec("difference", "revenue", 2020, entity="Borel", end_year=2022), "10.1"),  # 60.1 - 50.0
        (QuestionSpec("ratio", "net income", 2021, entity="Acme", denominator="revenue"), "0.11"),  # 12.5 / 110.5
        (QuestionSpec("ratio", "revenue", 2020, entity="Borel", end_year=2022), "1.2"),  # 60.1 / 50.0 = 1.202
        (QuestionSpec("ratio", "revenue", 2021, entity="Borel", denominator="net income"), "11.3"),  # 45.2 / 4.0
        (QuestionSpec("sum", "revenue", 2020), "150"),  # 100.0 + 50.0
        (QuestionSpec("sum", "net income", 2021), "16.5"),  # 12.5 + 4.0
    ]
    for spec, expected in cases:
        assert answer_for(small_table, spec) == expected, spec
        assert recompute(parse_context(small_table.linearize()), spec.to_dict()) == expected, spec


def test_linearized_table_is_compact_and_exact(small_table):
    assert small_table.linearize() == (
        "Results by company ($ million)\n"
        "Company|Metric|2020|2021|2022\n"
        "Acme|Revenue|100.0|110.5|120.0\n"
        "Acme|Net income|10.0|12.5|9.0\n"
        "Borel|Revenue|50.0|45.2|60.1\n"
        "Borel|Net income|5.5|4.0|6.6"
    )


def test_clarifying_question_names_every_option(small_table):
    assert clarifying_question("year", ["2020", "2021", "2022"]) == "Which year do you mean: 2020, 2021 or 2022?"
    assert clarifying_question("entity", ["Acme", "Borel"]) == "Which company do you mean: Acme or Borel?"


def test_invalid_question_specs_are_refused():
    with pytest.raises(ValueError, match="entity"):
        QuestionSpec("sum", "revenue", 2020, entity="Acme")
    with pytest.raises(ValueError, match="end_year"):
        QuestionSpec("difference", "revenue", 2020, entity="Acme")
    with pytest.raises(ValueError, match="after"):
        QuestionSpec("difference", "revenue", 2021, entity="Acme", end_year=2020)
    with pytest.raises(ValueError, match="no wording"):
        render_question(QuestionSpec("sum", "revenue", 2020), __import__("random").Random(0), removed="entity")


# --- the generated corpus -----------------------------------------------------------------------------

def test_default_sizes_and_unique_ids(corpus):
    assert {split: len(examples) for split, examples in corpus.items()} == {"train": 200, "validation": 40,
                                                                           "test": 60}
    ids = [e.id for examples in corpus.values() for e in examples]
    assert len(ids) == len(set(ids))
    assert all(e.task == "synthetic_tables" and e.meta["split"] == split
               for split, examples in corpus.items() for e in examples)


def test_every_answer_recomputes_from_the_parsed_table(corpus):
    kinds = set()
    for examples in corpus.values():
        for e in examples:
            cells = parse_context(e.context)
            assert e.goal == [recompute(cells, e.meta["question"])], e.id
            if e.meta["history_question"] is not None:
                assert e.history[1].content == recompute(cells, e.meta["history_question"]), e.id
            kinds.add(e.meta["variant"])
    assert kinds == {"lookup", "difference", "ratio_metrics", "ratio_years", "sum"}


def test_answer_and_clarify_examples_are_well_formed(corpus):
    for e in (e for examples in corpus.values() for e in examples):
        if e.action is Action.ANSWER:
            assert e.response == e.goal[0] and e.clarifications == [] and e.meta["removed_slot"] is None
        else:
            assert len(e.clarifications) == 1 and e.clarifications[0].answer == e.goal[0]
            options = e.meta["options"]
            assert len(options) >= 2 and e.meta["removed_value"] in options
            assert all(option in e.response for option in options) and e.response.endswith("?")
            assert e.meta["removed_value"].split(" to ")[-1].lower() in e.clarifications[0].reply.lower()


def test_clarify_share_is_balanced(corpus):
    for split, examples in corpus.items():
        share = sum(e.action is Action.CLARIFY for e in examples) / len(examples)
        assert 0.4 <= share <= 0.6, (split, share)
    assert all(e.action is Action.ANSWER for e in build_synthetic_corpus(ambiguous_fraction=0.0)["validation"])
    assert all(e.action is Action.CLARIFY for e in build_synthetic_corpus(ambiguous_fraction=1.0)["validation"])


def slot_strings(question: dict, slot: str) -> list[str]:
    if slot == "years":
        return [str(question["year"]), str(question["end_year"])]
    return [str(question[slot])]


def test_ambiguous_questions_lack_the_removed_slot_and_full_ones_name_every_slot(corpus):
    removed_seen = set()
    for e in (e for examples in corpus.values() for e in examples):
        question, text = e.meta["question"], e.history[-1].content
        named = [question[k] for k in ("entity", "metric", "denominator") if question[k] is not None]
        named += [str(question[k]) for k in ("year", "end_year") if question[k] is not None]
        removed = e.meta["removed_slot"]
        if removed is None:
            assert all(str(value).lower() in text.lower() for value in named), (e.id, text)
            continue
        removed_seen.add(removed)
        for value in slot_strings(question, removed):
            assert not re.search(rf"\b{re.escape(value)}\b", text, flags=re.IGNORECASE), (e.id, text)
        if removed in ("year", "years"):
            assert not re.search(r"\d{4}", text), (e.id, text)
        if removed == "entity":
            assert not any(entity in text for entity in e.meta["options"]), (e.id, text)
    assert removed_seen == {"entity", "metric", "year", "years"}


def test_every_template_pair_leaves_out_what_it_should():
    assert {removed for (_, removed) in QUESTION_TEMPLATES} == {None, "entity", "metric", "year", "years"}
    for (variant, removed), templates in QUESTION_TEMPLATES.items():
        assert len(templates) >= 3, (variant, removed)
        for template in templates:
            if removed in ("year", "years"):
                assert not {"{year}", "{start}", "{end}"} & set(re.findall(r"\{\w+\}", template))
            if removed == "metric":
                assert "{metric}" not in template and "{denominator}" not in template


def test_multi_turn_histories_alternate_and_end_with_the_user(corpus):
    examples = [e for split in SPLITS for e in corpus[split]]
    multi = [e for e in examples if len(e.history) > 1]
    assert 0.25 <= len(multi) / len(examples) <= 0.42
    for e in examples:
        assert [t.role for t in e.history] == ["user", "assistant"] * ((len(e.history) - 1) // 2) + ["user"]
        assert len(e.history) in (1, 3)
    for e in multi:
        assert e.meta["history_question"] != e.meta["question"]
        removed = e.meta["removed_slot"]
        if removed is not None:
            earlier = QuestionSpec.from_dict(e.meta["history_question"])
            assert earlier.variant in HISTORY_VARIANTS_LEAVING_OPEN[removed], e.id


def test_splits_share_no_table(corpus):
    table_ids = {split: {e.meta["table_id"] for e in corpus[split]} for split in SPLITS}
    contexts = {split: {e.context for e in corpus[split]} for split in SPLITS}
    assert [len(table_ids[s]) for s in SPLITS] == [50, 10, 15]
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not table_ids[a] & table_ids[b] and not contexts[a] & contexts[b], (a, b)


def test_same_seed_is_identical_and_another_seed_differs(corpus):
    again = build_synthetic_corpus(seed=0)
    assert {s: [e.to_dict() for e in ex] for s, ex in again.items()} == \
           {s: [e.to_dict() for e in ex] for s, ex in corpus.items()}
    other = build_synthetic_corpus(seed=1)
    assert [e.context for e in other["train"]] != [e.context for e in corpus["train"]]


def test_tables_do_not_change_when_a_split_grows():
    small = build_synthetic_corpus(seed=3, tables_per_split={"train": 2, "validation": 1, "test": 1})
    large = build_synthetic_corpus(seed=3, tables_per_split={"train": 5, "validation": 1, "test": 1})
    assert [e.to_dict() for e in large["train"][:8]] == [e.to_dict() for e in small["train"]]


def test_write_is_byte_identical_and_round_trips(tmp_path, corpus):
    counts = write_synthetic_corpus(tmp_path / "a", seed=0)
    write_synthetic_corpus(tmp_path / "b", seed=0)
    assert counts == {"train": 200, "validation": 40, "test": 60}
    for split in SPLITS:
        data = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert data == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
        loaded = load_synthetic_split(tmp_path / "a", split)
        assert [e.to_dict() for e in loaded] == [e.to_dict() for e in corpus[split]]
        assert read_examples(tmp_path / "a" / f"{split}.jsonl") == loaded
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["params"]["seed"] == 0 and manifest["counts"] == counts
    assert manifest["params"]["tables_per_split"] == {"train": 50, "validation": 10, "test": 15}
    for split in SPLITS:
        expected = sum(e.action is Action.CLARIFY for e in corpus[split]) / len(corpus[split])
        assert manifest["clarify_fraction"][split] == pytest.approx(expected)


def test_missing_split_says_how_to_build_it(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"validation\.jsonl.*generate\.py task=synthetic_tables"):
        load_synthetic_split(tmp_path, "validation")
    with pytest.raises(ConfigError, match="unknown split"):
        load_synthetic_split(tmp_path, "dev")


@pytest.mark.parametrize("kwargs, message", [
    ({"tables_per_split": {"dev": 3}}, "unknown split"),
    ({"tables_per_split": {"train": -1}}, "tables_per_split.train"),
    ({"ambiguous_fraction": 1.5}, "ambiguous_fraction"),
    ({"questions_per_table": 0}, "questions_per_table"),
])
def test_bad_parameters_name_the_option(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_synthetic_corpus(**kwargs)
