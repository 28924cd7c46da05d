"""PACIFIC loader: exact Examples from a hand-written native fixture, answer rendering, context
linearization, errors that name file/record/field, and counts on the real copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarifylab.data.loaders.linearize import TRUNCATION_MARKER, linearize_table, truncate_text
from clarifylab.data.loaders.pacific import format_number, load_pacific, read_pacific_dialogues, render_answer
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Clarification, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pacific_small.json"
DATA_DIR = Path(os.environ.get("CLARIFYLAB_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data"))
REAL_FILE = DATA_DIR / "pacific" / "validation.json"


@pytest.fixture(scope="module")
def examples():
    return load_pacific(FIXTURE)


def by_id(examples):
    return {example.id: example for example in examples}


# --- the fixture, Example by Example ------------------------------------------------------------------


def test_every_turn_is_one_example_in_file_order(examples):
    assert [e.id for e in examples] == [f"tbl-a-t0{i}" for i in range(1, 7)] + [f"tbl-b-t0{i}" for i in range(1, 4)]
    actions = "".join("C" if e.action is Action.CLARIFY else "A" for e in examples)
    assert actions == "ACAAAA" + "CAA"
    assert {e.task for e in examples} == {"pacific"}


def test_responses_render_spans_arithmetic_counts_with_scale(examples):
    assert [e.response for e in examples] == [
        "$ 1,200.5 million",                      # numeric span + scale word
        "Which years are you asking about?",      # clarifying question
        "-300 - 250 = -550 thousand",             # derivation = answer + scale (derivation stripped)
        "-550/250 = -220%",                       # percent as %, 220.0 written 220
        "2019, 2018",                             # multi-span joined by ", "
        "2",                                      # count: the number only
        "Which segment do you mean?",
        "12.5%",                                  # span + percent
        "$3.0 million, 4,000 thousand",           # a span that states its scale keeps it
    ]


def test_answer_examples_have_their_own_answer_as_goal(examples):
    for example in examples:
        if example.action is Action.ANSWER:
            assert example.goal == [example.response]
            assert example.clarifications == []


def test_clarify_example_takes_reply_and_answer_from_the_next_turn(examples):
    clarify = by_id(examples)["tbl-a-t02"]
    assert clarify.response == "Which years are you asking about?"
    assert clarify.clarifications == [Clarification(reply="From 2018 to 2019.", answer="-300 - 250 = -550 thousand")]
    assert clarify.goal == ["-300 - 250 = -550 thousand"]
    assert clarify.meta["clarified_question"] == "What was the change in cost from 2018 to 2019?"
    assert (clarify.meta["goal_answer"], clarify.meta["goal_scale"], clarify.meta["goal_answer_type"],
            clarify.meta["goal_derivation"]) == (-550, "thousand", "arithmetic", "-300 - 250 ")
    first = by_id(examples)["tbl-b-t01"]
    assert first.history == [Turn("user", "What is the margin?")]
    assert first.clarifications == [Clarification(reply="The retail segment.", answer="12.5%")]


def test_history_replays_earlier_turns_with_gold_replies(examples):
    assert by_id(examples)["tbl-a-t04"].history == [
        Turn("user", "What was the revenue in 2019?"), Turn("assistant", "$ 1,200.5 million"),
        Turn("user", "What was the change in cost?"), Turn("assistant", "Which years are you asking about?"),
        Turn("user", "From 2018 to 2019."), Turn("assistant", "-300 - 250 = -550 thousand"),
        Turn("user", "What is that as a percentage of 2018?"),
    ]


def test_turn_after_a_clarification_is_an_answer_to_the_reply(examples):
    after = by_id(examples)["tbl-a-t03"]
    assert after.action is Action.ANSWER
    assert after.history[-3:] == [Turn("user", "What was the change in cost?"),
                                  Turn("assistant", "Which years are you asking about?"),
                                  Turn("user", "From 2018 to 2019.")]
    assert [e.id for e in examples if e.meta["after_clarification"]] == ["tbl-a-t03", "tbl-b-t02"]


def test_meta_keeps_raw_answer_scale_derivation(examples):
    multi = by_id(examples)["tbl-b-t03"]
    assert multi.meta["answer"] == ["$3.0 million", "4,000"]
    assert (multi.meta["answer_type"], multi.meta["answer_from"], multi.meta["scale"]) == \
        ("multi-span", "text", "thousand")
    count = by_id(examples)["tbl-a-t06"]
    assert (count.meta["answer"], count.meta["derivation"]) == ("2", "2019##2018")
    meta = by_id(examples)["tbl-a-t04"].meta
    assert (meta["conversation_id"], meta["dialogue_id"], meta["dialogue_index"], meta["turn"], meta["uid"]) == \
        ("tbl-a", "tbl-a", 0, 4, "q-a4")
    assert meta["follow_up"] is True and meta["original_question"].endswith("as a percentage of 2018?")
    json.dumps([e.to_dict() for e in load_pacific(FIXTURE)])  # JSON-serializable


def test_context_is_table_then_paragraphs_in_order(examples):
    assert examples[0].context == (
        "Table:\n"
        "| 2019 | 2018\n"
        "Revenue | $ 1,200.5 | $1,000.0\n"
        "Cost | (300) | 250\n"
        "\n"
        "Text:\n"
        "Revenue grew   strongly in 2019.\n"   # paragraphs sorted by order, only their ends stripped
        "Costs are shown in thousands."
    )
    assert all(e.context == examples[0].context for e in examples[:6])
    assert examples[0].meta["context_truncated"] is False


def test_max_context_chars_bounds_the_context():
    bounded = load_pacific(FIXTURE, max_context_chars=60)
    assert all(len(e.context) <= 60 for e in bounded)
    assert bounded[0].context.startswith("Table:\n| 2019 | 2018") and bounded[0].context.endswith(TRUNCATION_MARKER)
    assert bounded[0].meta["context_truncated"] is True


# --- rendering and linearization -----------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "answer_type", "derivation", "scale", "expected"), [
    (11.76, "arithmetic", "0.6/5.1", "percent", "0.6/5.1 = 11.76%"),          # ACT Table A17 + percent
    (88506, "arithmetic", "49,361 - (39,145)", "", "49,361 - (39,145) = 88506"),  # ACT Table A17
    (42271.0, "arithmetic", "0 - (-42,271)", "thousand", "0 - (-42,271) = 42271 thousand"),
    (2.5, "arithmetic", "", "million", "2.5 million"),
    (["(1.9)"], "span", "", "million", "(1.9) million"),
    (["−298"], "span", "", "million", "−298 million"),
    (["27.1%"], "span", "", "percent", "27.1%"),
    (["S$215 million for fixed"], "span", "", "million", "S$215 million for fixed"),
    (["using the straight-line method"], "span", "", "thousand", "using the straight-line method"),
    (["  Billed ", "Unbilled"], "multi-span", "", "", "Billed, Unbilled"),
    (3, "count", "a##b##c", "", "3"),
    ([" Which year? "], "question", "", "", "Which year?"),
])
def test_render_answer(answer, answer_type, derivation, scale, expected):
    assert render_answer(answer, answer_type, derivation, scale) == expected


@pytest.mark.parametrize(("value", "text"), [(42271.0, "42271"), (-12.6, "-12.6"), (1e-05, "0.00001"),
                                             (54633874, "54633874"), (-0.0, "0"), (0.4, "0.4")])
def test_format_number(value, text):
    assert format_number(value) == text


def test_render_answer_rejects_wrong_shapes():
    for args in [("12", "arithmetic"), (True, "arithmetic"), ([], "span"), (["a"], "table")]:
        with pytest.raises(ValueError):
            render_answer(*args)


def test_linearize_table_and_truncate_text():
    assert linearize_table([["", "", "Years Ended", ""], ["", "2019", "2018", "2017"], [" ", ""], ["A  b", "1"]]) == \
        "|  | Years Ended |\n| 2019 | 2018 | 2017\nA b | 1"
    assert truncate_text("short", 100) == "short"
    assert truncate_text("alpha beta gamma delta epsilon", 20) == "alpha beta" + TRUNCATION_MARKER
    assert len(truncate_text("x" * 50, 20)) == 20
    with pytest.raises(ValueError):
        truncate_text("x" * 50, 10)


# --- errors -------------------------------------------------------------------------------------------


def _write(tmp_path, data) -> Path:
    path = tmp_path / "pacific.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _fixture_data():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _drop(key):
    def mutate(dialogue):
        del dialogue["questions"][1][key]
    return mutate


def _set(turn, key, value):
    def mutate(dialogue):
        dialogue["questions"][turn][key] = value
    return mutate


def _last_turn_clarifies(dialogue):
    dialogue["questions"][-1].update(req_clari=True, answer_type="question", answer=["Which one?"])


MALFORMED = {
    "missing answer_type": (_drop("answer_type"), "turn 2 (uid q-a2): field 'questions[1].answer_type' is missing"),
    "unknown scale": (_set(0, "scale", "millions"), "field 'questions[0].scale' is 'millions'"),
    "req_clari not bool": (_set(1, "req_clari", "yes"), "field 'questions[1].req_clari' must be true/false"),
    "arithmetic text": (_set(2, "answer", "minus 550"),
                        "field 'questions[2].answer' is invalid: an arithmetic answer must be a number"),
    "span not list": (_set(0, "answer", "$ 1,200.5"),
                      "field 'questions[0].answer' is invalid: a span answer must be a non-empty list"),
    "empty question": (_set(3, "question", "  "), "field 'questions[3].question' is empty"),
    "req_clari vs type": (_set(0, "req_clari", True),
                          "field 'questions[0].req_clari' is true but answer_type is 'span'"),
    "last turn clarifies": (_last_turn_clarifies, "field 'questions[5].req_clari' is true on the last turn"),
    "no questions": (lambda d: d.update(questions=[]), "field 'questions' is empty"),
    "bad table row": (lambda d: d["table"]["table"].append([1, 2]), "field 'table.table[4]' must be a list of strings"),
    "paragraph text": (lambda d: d["paragraphs"][0].pop("text"), "field 'paragraphs[0].text' is missing"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_turn_names_file_dialogue_and_field(tmp_path, case):
    mutate, expected = MALFORMED[case]
    data = _fixture_data()
    mutate(data[0])
    path = _write(tmp_path, data)
    with pytest.raises(DataFormatError) as raised:
        load_pacific(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: dialogue 0 (table uid tbl-a)")
    assert expected in message


def test_malformed_file_level_errors(tmp_path):
    data = _fixture_data()
    del data[1]["table"]["uid"]
    with pytest.raises(DataFormatError, match=r"dialogue 1: field 'table.uid' is missing"):
        load_pacific(_write(tmp_path, data))
    data = _fixture_data()
    data[1]["table"]["uid"] = "tbl-a"
    with pytest.raises(DataFormatError, match=r"dialogue 1: field 'table.uid' 'tbl-a' repeats dialogue 0"):
        load_pacific(_write(tmp_path, data))
    with pytest.raises(DataFormatError, match="must be a list of dialogues"):
        load_pacific(_write(tmp_path, {"data": []}))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"table": ', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{broken}: not valid JSON"):
        load_pacific(broken)


def test_missing_file_names_path_and_options(tmp_path):
    missing = tmp_path / "pacific" / "validation.json"
    with pytest.raises(DataNotFoundError) as raised:
        load_pacific(missing)
    for part in (str(missing), "dataset.path", "paths.data_dir", "CLARIFYLAB_DATA_DIR"):
        assert part in str(raised.value)


def test_loading_does_not_touch_the_data_folder(tmp_path):
    path = _write(tmp_path, _fixture_data())
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    read_pacific_dialogues(path)
    load_pacific(path, max_context_chars=80)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_registry_loads_splits_of_the_fixture():
    cfg = OmegaConf.create({"name": "pacific", "path": str(FIXTURE), "max_context_chars": None,
                            "eval_fraction": 0.5, "split_seed": 0, "val_conversations": 0,
                            "conversations": None, "subset_seed": 0})
    train = load_dataset_split(cfg, "train", None)
    test = load_dataset_split(cfg, "test", None)
    assert len(train) + len(test) == 9
    assert {e.meta["conversation_id"] for e in train}.isdisjoint({e.meta["conversation_id"] for e in test})
    assert {e.meta["split"] for e in train} == {"train"} and {e.meta["split"] for e in test} == {"test"}


# --- the real copy ------------------------------------------------------------------------------------

needs_real_copy = pytest.mark.skipif(not REAL_FILE.is_file(), reason=f"PACIFIC not found at {REAL_FILE} "
                                     "(set CLARIFYLAB_DATA_DIR to the shared data folder)")


@pytest.fixture(scope="module")
def real_examples():
    return load_pacific(REAL_FILE)


@pytest.mark.data
@needs_real_copy
def test_real_copy_counts(real_examples):
    assert len(read_pacific_dialogues(REAL_FILE)) == 277
    assert len(real_examples) == 1982
    assert sum(e.action is Action.CLARIFY for e in real_examples) == 320
    assert sum(e.meta["after_clarification"] for e in real_examples) == 320
    assert len({e.id for e in real_examples}) == 1982
    assert len({e.meta["conversation_id"] for e in real_examples}) == 277


@pytest.mark.data
@needs_real_copy
def test_real_copy_clarifications_point_at_the_next_turn(real_examples):
    for example, following in zip(real_examples, real_examples[1:], strict=False):
        if example.action is Action.CLARIFY:
            assert following.meta["after_clarification"]
            assert example.clarifications == [Clarification(following.history[-1].content, following.response)]
            assert example.goal == [following.response]
    first = real_examples[0]
    assert first.response == "fixed-price type, cost-plus type, time-and-material type"
    assert real_examples[8].response == "(44.1-56.7)/56.7 = -22.22%"


@pytest.mark.data
@needs_real_copy
def test_real_copy_split_sizes_match_the_config_comments():
    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "dataset" / "pacific.yaml")
    cfg.path = str(REAL_FILE)
    sizes = {split: load_dataset_split(cfg, split, None) for split in ("train", "validation", "test")}
    assert {k: (len({e.meta["conversation_id"] for e in v}), len(v), sum(e.action is Action.CLARIFY for e in v))
            for k, v in sizes.items()} == {"train": (212, 1522, 250), "validation": (10, 72, 12), "test": (55, 388, 58)}
    cfg.conversations = 50
    assert len(load_dataset_split(cfg, "train", None)) == 360
    cfg.update({"conversations": 250, "eval_fraction": 0.05, "val_conversations": 5})
    assert len({e.meta["conversation_id"] for e in load_dataset_split(cfg, "train", None)}) == 250


def test_consecutive_clarifications_resolve_to_the_first_answer(tmp_path):
    data = _fixture_data()
    second = dict(data[1]["questions"][0], uid="q-b1b", question="Online.", answer=["Which year?"])
    data[1]["questions"].insert(1, second)
    first, again, answer = load_pacific(_write(tmp_path, data))[6:9]
    assert first.clarifications == [Clarification(reply="Online.", answer="12.5%")]
    assert again.clarifications == [Clarification(reply="The retail segment.", answer="12.5%")]
    assert first.goal == again.goal == [answer.response] == ["12.5%"]
    assert again.meta["after_clarification"] and answer.meta["after_clarification"]
