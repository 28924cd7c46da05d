"""TAT-QA loader: exact Examples from a hand-written native fixture, errors that name file/context/
question/field, the registry through a composed Hydra config, and counts on the real copy."""

from __future__ import annotations

import collections
import json
import os
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.loaders.linearize import TRUNCATION_MARKER
from clarifylab.data.loaders.tatqa import load_tatqa, read_tatqa_contexts
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.metrics.task_heuristics import PacificHeuristic

register_resolvers()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "tatqa_small.json"
DATA_DIR = Path(os.environ.get("CLARIFYLAB_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data"))
REAL_FILE = DATA_DIR / "tatqa" / "tatqa_dataset_dev.json"
PACIFIC_FILE = DATA_DIR / "pacific" / "validation.json"

CONTEXT_A = ("Table:\n"
             "| 2019 | 2018\n"
             "Revenue | $ 1,200.5 | $1,000.0\n"
             "Cost | (300) | 250\n"              # the all-blank last row is dropped
             "\n"
             "Text:\n"
             "Revenue grew   strongly in 2019.\n"  # paragraphs sorted by order, only their ends stripped
             "Costs are shown in thousands.")


@pytest.fixture(scope="module")
def examples():
    return load_tatqa(FIXTURE)


def by_id(examples):
    return {example.id: example for example in examples}


# --- the fixture, Example by Example ------------------------------------------------------------------


def test_every_question_is_one_answer_example_in_file_order(examples):
    assert [e.id for e in examples] == [f"q-a{i}" for i in range(1, 7)] + ["q-b1", "q-b2", "q-b3"]
    assert all(e.action is Action.ANSWER and e.clarifications == [] for e in examples)
    assert {e.task for e in examples} == {"tatqa"}
    assert by_id(examples)["q-a2"].history == [Turn("user", "What was the change in cost from 2018 to 2019?")]
    assert all(len(e.history) == 1 for e in examples)


def test_responses_render_like_pacific(examples):
    assert [e.response for e in examples] == [
        "$ 1,200.5 million",             # numeric span + scale word
        "-300 - 250 = -550 thousand",    # derivation (stripped) = answer + scale
        "-550/250 = -220%",              # percent as %, -220.0 written -220
        "2019, 2018",                    # multi-span joined by ", " (spans stripped)
        "2",                             # count: the number only
        "2019",                          # a comparison span keeps no derivation
        "12.5%",                         # span + percent
        "$3.0 million, 4,000 thousand",  # a span that states its scale keeps it
        "42271",                         # arithmetic without derivation: the number only
    ]
    assert all(e.goal == [e.response] for e in examples)


def test_context_is_table_then_paragraphs(examples):
    assert all(e.context == CONTEXT_A for e in examples[:6])
    assert examples[6].context == "Table:\nSegment | Margin\nRetail | 12.5"   # no paragraphs: no Text block
    assert not any(e.meta["context_truncated"] for e in examples)


def test_meta_keeps_raw_answer_and_scorer_fields(examples):
    arithmetic = by_id(examples)["q-a2"].meta
    assert {key: arithmetic[key] for key in ("conversation_id", "table_uid", "context_index", "question_index",
                                             "uid", "order", "answer", "answer_type", "answer_from", "scale",
                                             "derivation", "req_comparison", "rel_paragraphs")} == {
        "conversation_id": "tq-a", "table_uid": "tq-a", "context_index": 0, "question_index": 1, "uid": "q-a2",
        "order": 2, "answer": -550, "answer_type": "arithmetic", "answer_from": "table-text", "scale": "thousand",
        "derivation": "-300 - 250 ", "req_comparison": False, "rel_paragraphs": ["2"]}
    assert (arithmetic["goal_answer"], arithmetic["goal_scale"], arithmetic["goal_answer_type"],
            arithmetic["goal_derivation"]) == (-550, "thousand", "arithmetic", "-300 - 250 ")
    multi = by_id(examples)["q-b2"].meta
    assert (multi["answer"], multi["goal_answer"], multi["conversation_id"], multi["question_index"]) == \
        (["$3.0 million", "4,000"], ["$3.0 million", "4,000"], "tq-b", 1)
    count = by_id(examples)["q-a5"].meta
    assert (count["answer"], count["derivation"]) == ("2", "2019##2018")
    assert by_id(examples)["q-a6"].meta["req_comparison"] is True
    json.dumps([e.to_dict() for e in examples])  # JSON-serializable


def test_the_tatqa_drop_scorer_reads_the_meta(examples):
    heuristic = PacificHeuristic()
    chosen = [by_id(examples)[i] for i in ("q-a1", "q-a3", "q-a4", "q-b1")]
    assert heuristic.score([e.response for e in chosen], [e.goal for e in chosen], chosen) == [1.0] * 4
    # the result alone with its scale scores 1; the right number with a wrong or no scale scores 0 (TAT-QA's
    # rule); one of two spans gets partial F1; spans in another order still match
    assert heuristic.score(["-220%", "-220", "1,200.5 thousand", "2019", "2018, 2019"],
                           [chosen[1].goal, chosen[1].goal, chosen[0].goal, chosen[2].goal, chosen[2].goal],
                           [chosen[1], chosen[1], chosen[0], chosen[2], chosen[2]]) == [1.0, 0.0, 0.0, 0.67, 1.0]


def test_max_context_chars_bounds_the_context():
    bounded = load_tatqa(FIXTURE, max_context_chars=60)
    assert all(len(e.context) <= 60 for e in bounded)
    assert bounded[0].context.startswith("Table:\n| 2019 | 2018") and bounded[0].context.endswith(TRUNCATION_MARKER)
    assert bounded[0].meta["context_truncated"] is True
    assert bounded[6].meta["context_truncated"] is False   # table b is shorter than 60 characters


# --- errors -------------------------------------------------------------------------------------------


def _fixture_data():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _write(tmp_path, data) -> Path:
    path = tmp_path / "tatqa.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _set(question, key, value):
    def mutate(context):
        context["questions"][question][key] = value
    return mutate


def _drop(question, key):
    def mutate(context):
        del context["questions"][question][key]
    return mutate


MALFORMED = {
    "missing answer_type": (_drop(1, "answer_type"),
                            "question 2 (uid q-a2): field 'questions[1].answer_type' is missing"),
    "pacific answer_type": (_set(0, "answer_type", "question"),
                            "field 'questions[0].answer_type' is 'question'; expected one of"),
    "unknown scale": (_set(0, "scale", "millions"), "field 'questions[0].scale' is 'millions'"),
    "arithmetic text": (_set(2, "answer", "minus 220"),
                        "field 'questions[2].answer' is invalid: an arithmetic answer must be a number"),
    "span not list": (_set(0, "answer", "$ 1,200.5"),
                      "field 'questions[0].answer' is invalid: a span answer must be a non-empty list"),
    "answer missing": (_drop(3, "answer"), "question 4 (uid q-a4): field 'questions[3].answer' is missing"),
    "empty question": (_set(3, "question", "  "), "field 'questions[3].question' is empty"),
    "order not int": (_set(4, "order", "5"), "field 'questions[4].order' must be an integer"),
    "req_comparison": (_set(5, "req_comparison", "no"), "field 'questions[5].req_comparison' must be true/false"),
    "question not object": (lambda c: c["questions"].__setitem__(2, "What?"), "field 'questions[2]' must be an object"),
    "no questions": (lambda c: c.update(questions=[]), "field 'questions' is empty"),
    "bad table row": (lambda c: c["table"]["table"].append([1, 2]), "field 'table.table[4]' must be a list of strings"),
    "paragraph text": (lambda c: c["paragraphs"][0].pop("text"), "field 'paragraphs[0].text' is missing"),
    "repeated question uid": (_set(1, "uid", "q-a1"),
                              "field 'questions[1].uid' 'q-a1' repeats a question of context 0"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_question_names_file_context_and_field(tmp_path, case):
    mutate, expected = MALFORMED[case]
    data = _fixture_data()
    mutate(data[0])
    path = _write(tmp_path, data)
    with pytest.raises(DataFormatError) as raised:
        load_tatqa(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: context 0 (table uid tq-a)")
    assert expected in message


def test_malformed_file_level_errors(tmp_path):
    data = _fixture_data()
    del data[1]["table"]["uid"]
    with pytest.raises(DataFormatError, match=r"context 1: field 'table.uid' is missing"):
        load_tatqa(_write(tmp_path, data))
    data = _fixture_data()
    data[1]["table"]["uid"] = "tq-a"
    with pytest.raises(DataFormatError,
                       match=r"context 1 \(table uid tq-a\): field 'table.uid' 'tq-a' repeats context 0"):
        load_tatqa(_write(tmp_path, data))
    data = _fixture_data()
    data[1]["questions"][2]["uid"] = "q-a3"
    with pytest.raises(DataFormatError,
                       match=r"context 1 .*'questions\[2\].uid' 'q-a3' repeats a question of context 0"):
        load_tatqa(_write(tmp_path, data))
    with pytest.raises(DataFormatError, match="must be a list of contexts"):
        load_tatqa(_write(tmp_path, {"data": []}))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"table": ', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{broken}: not valid JSON"):
        load_tatqa(broken)


def test_missing_file_names_path_and_options(tmp_path):
    missing = tmp_path / "tatqa" / "tatqa_dataset_dev.json"
    with pytest.raises(DataNotFoundError) as raised:
        load_tatqa(missing)
    for part in (str(missing), "dataset.path", "paths.data_dir", "CLARIFYLAB_DATA_DIR", "tatqa/tatqa_dataset_dev.json"):
        assert part in str(raised.value)


# --- registry through the composed config ---------------------------------------------------------------


def compose_train(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_registry_loads_tatqa_through_the_composed_config(tmp_path):
    (tmp_path / "tatqa").mkdir()
    shutil.copy(FIXTURE, tmp_path / "tatqa" / "tatqa_dataset_dev.json")
    cfg = compose_train("dataset=tatqa", f"paths.data_dir={tmp_path}", "dataset.eval_fraction=0.5",
                        "dataset.val_conversations=0", "dataset.max_train_examples=2")
    assert cfg.dataset.path == str(tmp_path / "tatqa" / "tatqa_dataset_dev.json")
    train = load_dataset_split(cfg.dataset, cfg.dataset.train_split, cfg.paths)
    test = load_dataset_split(cfg.dataset, cfg.dataset.eval_split, cfg.paths)
    assert sorted(len(split) for split in (train, test)) == [3, 6]   # one table each
    assert {e.meta["conversation_id"] for e in train}.isdisjoint({e.meta["conversation_id"] for e in test})
    assert {e.meta["split"] for e in train} == {"train"} and {e.meta["split"] for e in test} == {"test"}
    capped = load_dataset_split(cfg.dataset, cfg.dataset.train_split, cfg.paths,
                                max_examples=cfg.dataset.max_train_examples)
    assert [e.id for e in capped] == [e.id for e in train[:2]]
    everything = load_dataset_split(cfg.dataset, "all", cfg.paths)
    assert [e.id for e in everything] == [e.id for e in load_tatqa(FIXTURE)]


# --- the real copy ------------------------------------------------------------------------------------

needs_real_copy = pytest.mark.skipif(not REAL_FILE.is_file(), reason=f"TAT-QA not found at {REAL_FILE} "
                                     "(set CLARIFYLAB_DATA_DIR to the shared data folder)")


@pytest.fixture(scope="module")
def real_examples():
    return load_tatqa(REAL_FILE)


@pytest.mark.data
@needs_real_copy
def test_real_copy_counts(real_examples):
    assert len(read_tatqa_contexts(REAL_FILE)) == 278
    assert len(real_examples) == 1668
    assert collections.Counter(e.meta["answer_type"] for e in real_examples) == {
        "arithmetic": 718, "span": 701, "multi-span": 217, "count": 32}
    assert collections.Counter(e.meta["answer_from"] for e in real_examples) == {
        "table": 772, "table-text": 507, "text": 389}
    assert len({e.id for e in real_examples}) == 1668
    assert len({e.meta["conversation_id"] for e in real_examples}) == 278
    assert all(e.action is Action.ANSWER and e.goal == [e.response] and e.response for e in real_examples)
    assert [e.response for e in real_examples[1:6]] == [
        "$1,496.5 million", "fixed-price type, cost-plus type, time-and-material type", "2019",
        "44.1-56.7 = -12.6 million", "(44.1-56.7)/56.7 = -22.22%"]


@pytest.mark.data
@needs_real_copy
def test_real_copy_split_sizes_match_the_config_comments():
    cfg = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "tatqa.yaml")
    cfg.path = str(REAL_FILE)
    splits = {split: load_dataset_split(cfg, split, None) for split in ("train", "validation", "test")}
    assert {k: (len({e.meta["conversation_id"] for e in v}), len(v)) for k, v in splits.items()} == \
        {"train": (212, 1272), "validation": (10, 60), "test": (56, 336)}
    assert sum(e.meta["context_truncated"] for e in splits["train"] + splits["validation"] + splits["test"]) == 24
    cfg.conversations = 50
    assert len(load_dataset_split(cfg, "train", None)) == 300
    if PACIFIC_FILE.is_file():   # the curriculum trains on TAT-QA and evaluates on PACIFIC: no table leaks
        pacific = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "pacific.yaml")
        pacific.path = str(PACIFIC_FILE)
        held_out = {e.meta["conversation_id"] for split in ("validation", "test")
                    for e in load_dataset_split(pacific, split, None)}
        assert held_out.isdisjoint({e.meta["conversation_id"] for e in splits["train"]})
