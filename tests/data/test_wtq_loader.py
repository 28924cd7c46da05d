"""WikiTableQuestions loader: TSV escapes, CSV quoting, exact Examples from a native-layout fixture tree,
errors that name file/line/id/field, the registry through a composed Hydra config, and counts on the
real copy."""

from __future__ import annotations

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
from clarifylab.data.loaders.wtq import load_wtq, read_wtq_questions, read_wtq_table, split_target_values, unescape_tsv
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError

register_resolvers()
FIXTURE_DIR = Path(__file__).parents[1] / "fixtures" / "wtq_small"
DATA_DIR = Path(os.environ.get("CLARIFYLAB_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data"))
REAL_DIR = DATA_DIR / "wikitablequestions"
HEADER = "id\tutterance\tcontext\ttargetValue\n"

TABLE_0 = ("Table:\n"
           "Year | Title | Chart-Positions UK | Notes\n"          # a newline inside a quoted header cell
           "1969 | Renaissance, Part 1 | 60 | Episode: \"Long Before\"\n"
           "1972 | Say \"Hi\" | – | back\\slash\n"               # the all-empty row after it is dropped
           "1973 | Two lines | 171 |")
TABLE_1 = ("Table:\n"
           "Name | Position | Goals\n"
           "Siim Ennemuist | MF | 3\n"
           "Andri Aganits | MF | 1\n"
           "Ardo Kreek | MF | 0")


# --- escapes and tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "text"), [
    ("plain", "plain"), ("a\\nb", "a\nb"), ("back\\\\slash", "back\\slash"), ("a\\pb", "a|b"),
    ("\\\\n", "\\n"),          # an escaped backslash followed by n is not a newline
    ("\\\\\\p", "\\|"), ("keep \\t", "keep \\t"), ("trailing\\", "trailing\\"),
])
def test_unescape_tsv(field, text):
    assert unescape_tsv(field) == text


@pytest.mark.parametrize(("field", "values"), [
    ("Wolfe Tones", ["Wolfe Tones"]), ("Siim Ennemuist|Andri Aganits", ["Siim Ennemuist", "Andri Aganits"]),
    ("a|b\\pc", ["a", "b|c"]), (" 12,467 | x\\ny ", ["12,467", "x\ny"]), ("", [""]),
])
def test_split_target_values(field, values):
    assert split_target_values(field) == values


def test_read_wtq_table_undoes_csv_quoting():
    assert read_wtq_table(FIXTURE_DIR / "csv" / "200-csv" / "0.csv") == [
        ["Year", "Title", "Chart-Positions\nUK", "Notes"],
        ["1969", "Renaissance, Part 1", "60", 'Episode: "Long Before"'],   # comma inside quotes; \" escape
        ["1972", 'Say "Hi"', "–", "back\\slash"],                          # "" escape; \\ escape
        ["", "", "", ""],
        ["1973", "Two\nlines", "171", ""],                                  # newline inside quotes
    ]


# --- the fixture tree, Example by Example --------------------------------------------------------------


@pytest.fixture(scope="module")
def dev():
    return load_wtq(FIXTURE_DIR)


def test_dev_file_gives_one_answer_example_per_record(dev):
    assert [e.id for e in dev] == ["nt-0", "nt-1", "nt-2"]
    assert all(e.action is Action.ANSWER and e.clarifications == [] and e.task == "wtq" for e in dev)
    assert [e.history for e in dev] == [[Turn("user", "which title charted at 60 in the uk?")],
                                        [Turn("user", "which players played the same position as ardo kreek?")],
                                        [Turn("user", "how many goals did siim ennemuist score?")]]
    assert [e.response for e in dev] == ["Renaissance, Part 1", "Siim Ennemuist, Andri Aganits", "3"]
    assert all(e.goal == [e.response] for e in dev)   # all values form one answer, not alternatives
    assert [e.context for e in dev] == [TABLE_0, TABLE_1, TABLE_1]


def test_meta_keeps_target_values_and_where_the_record_came_from(dev):
    assert dev[1].meta == {"conversation_id": "csv/203-csv/1.csv", "table_path": "csv/203-csv/1.csv",
                           "target_values": ["Siim Ennemuist", "Andri Aganits"],
                           "target_value_raw": "Siim Ennemuist|Andri Aganits",
                           "question_file": "data/random-split-1-dev.tsv", "line": 3, "table_rows": 3,
                           "table_columns": 3, "context_truncated": False}
    assert (dev[0].meta["table_rows"], dev[0].meta["table_columns"], dev[0].meta["line"]) == (4, 4, 2)
    json.dumps([e.to_dict() for e in dev])


def test_training_file_undoes_tsv_escapes():
    examples = {e.id: e for e in load_wtq(FIXTURE_DIR, "data/training.tsv")}
    assert sorted(examples) == ["nt-0", "nt-1", "nt-2", "nt-3", "nt-4"]
    escaped = examples["nt-3"]
    assert escaped.history == [Turn("user", "which note has a back\\slash, and what is a|b?")]
    assert escaped.meta["target_values"] == ["back\\slash", "a|b"]
    assert escaped.meta["target_value_raw"] == "back\\\\slash|a\\pb"
    assert escaped.response == "back\\slash, a|b"
    spaced = examples["nt-4"]
    assert spaced.history == [Turn("user", "which title spans\ntwo lines?")]   # stripped, newline kept
    assert spaced.meta["target_values"] == ["Two\nlines"]
    assert spaced.response == "Two lines"   # whitespace collapsed as in the context
    assert spaced.meta["question_file"] == "data/training.tsv"


def test_max_context_chars_bounds_the_table():
    bounded = load_wtq(FIXTURE_DIR, max_context_chars=70)
    assert all(len(e.context) <= 70 for e in bounded)
    assert bounded[0].context.startswith("Table:\nYear | Title") and bounded[0].context.endswith(TRUNCATION_MARKER)
    assert [e.meta["context_truncated"] for e in bounded] == [True, True, True]
    assert load_wtq(FIXTURE_DIR, max_context_chars=len(TABLE_0))[0].context == TABLE_0


# --- errors -------------------------------------------------------------------------------------------


def test_malformed_record_fixture_names_file_line_id_and_field():
    path = FIXTURE_DIR / "data" / "malformed-record.tsv"
    with pytest.raises(DataFormatError) as raised:
        load_wtq(FIXTURE_DIR, "data/malformed-record.tsv")
    assert str(raised.value).startswith(f"{path}: line 3 (id nt-9): field '(record)' has 3 tab-separated fields; "
                                        "expected 4 (id, utterance, context, targetValue)")


def test_malformed_table_fixture_names_the_table_and_the_record():
    with pytest.raises(DataFormatError) as raised:
        load_wtq(FIXTURE_DIR, "data/malformed-table.tsv")
    message = str(raised.value)
    assert message.startswith(f"{FIXTURE_DIR / 'csv' / '201-csv' / '0.csv'}: line 2: not valid WikiTableQuestions "
                              "CSV (unexpected end of data)")
    assert f"named by {FIXTURE_DIR / 'data' / 'malformed-table.tsv'}: line 3 (id nt-8), field 'context'" in message


def _tree(tmp_path, tsv_text: str) -> Path:
    root = tmp_path / "wtq"
    shutil.copytree(FIXTURE_DIR, root)
    (root / "data" / "q.tsv").write_text(tsv_text, encoding="utf-8")
    return root


def test_target_values_stay_a_list_from_loader_to_scorer(tmp_path):
    from clarifylab.metrics.task_heuristics import heuristic_for

    root = _tree(tmp_path, HEADER + "nt-0\twhen?\tcsv/200-csv/0.csv\tMarch 21, 1964|Renaissance, Part 1\n"
                                    "nt-1\twhen?\tcsv/200-csv/0.csv\tMarch 21, 1964\n")
    two, one = load_wtq(root, "data/q.tsv")
    assert two.meta["target_values"] == ["March 21, 1964", "Renaissance, Part 1"]
    assert two.response == "March 21, 1964, Renaissance, Part 1" and one.meta["target_values"] == ["March 21, 1964"]
    scores = heuristic_for("wtq").score([two.response, "Renaissance, Part 1, March 21, 1964", one.response,
                                         "March 21"], [two.goal, two.goal, one.goal, one.goal], [two, two, one, one])
    assert scores == [1.0, 1.0, 1.0, 0.0]


GOOD = "nt-0\twhich title?\tcsv/200-csv/0.csv\tRenaissance, Part 1\n"
MALFORMED = {
    "wrong header": ("id\tquestion\tcontext\tanswer\n" + GOOD,
                     "line 1: field '(header)' is ['id', 'question', 'context', 'answer']"),
    "too many fields": (HEADER + GOOD + "nt-5\twhich?\tcsv/200-csv/0.csv\t1\textra\n",
                        "line 3 (id nt-5): field '(record)' has 5 tab-separated fields"),
    "empty id": (HEADER + " \twhich?\tcsv/200-csv/0.csv\t1\n", "line 2: field 'id' is empty"),
    "empty utterance": (HEADER + "nt-5\t \tcsv/200-csv/0.csv\t1\n", "line 2 (id nt-5): field 'utterance' is empty"),
    "empty value": (HEADER + "nt-5\twhich?\tcsv/200-csv/0.csv\ta||b\n",
                    "line 2 (id nt-5): field 'targetValue' value 2 of 3 is empty"),
    "empty target": (HEADER + "nt-5\twhich?\tcsv/200-csv/0.csv\t\n", "field 'targetValue' value 1 of 1 is empty"),
    "escaping path": (HEADER + "nt-5\twhich?\t../secret.csv\t1\n",
                      "line 2 (id nt-5): field 'context' is '../secret.csv'"),
    "not a csv": (HEADER + "nt-5\twhich?\tcsv/200-csv/0.tsv\t1\n", "field 'context' is 'csv/200-csv/0.tsv'"),
    "repeated id": (HEADER + GOOD + "\n" + GOOD, "line 4 (id nt-0): field 'id' repeats line 2"),
    "empty file": ("", "top level: field '(header)' is missing"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_question_file(tmp_path, case):
    text, expected = MALFORMED[case]
    root = _tree(tmp_path, text)
    with pytest.raises(DataFormatError) as raised:
        load_wtq(root, "data/q.tsv")
    assert str(raised.value).startswith(f"{root / 'data' / 'q.tsv'}: ")
    assert expected in str(raised.value)


def test_malformed_tables(tmp_path):
    root = _tree(tmp_path, HEADER + "nt-5\twhich?\tcsv/201-csv/1.csv\t1\n")
    table = root / "csv" / "201-csv" / "1.csv"
    table.write_text('"a","b"\n"1","2"\n"3","4","5"\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{table}: row 2 \(ending on line 3\): field '\(row\)' has 3 cells but "
                                              r"the header has 2.*named by .*q.tsv: line 2 \(id nt-5\)"):
        load_wtq(root, "data/q.tsv")
    table.write_text('"a","b"x,"c"\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{table}: line 1: not valid WikiTableQuestions CSV"):
        read_wtq_table(table)
    table.write_text("", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"field '\(header\)' is missing: the file is empty"):
        read_wtq_table(table)
    table.write_bytes(b'"caf\xe9"\n')
    with pytest.raises(DataFormatError, match=rf"{table}: not UTF-8 text"):
        read_wtq_table(table)


def test_missing_files_name_the_path_and_options(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as raised:
        load_wtq(missing)
    for part in (str(missing / "data" / "random-split-1-dev.tsv"), "dataset.tsv", "dataset.dir", "paths.data_dir",
                 "CLARIFYLAB_DATA_DIR", "wikitablequestions/"):
        assert part in str(raised.value)
    root = _tree(tmp_path, HEADER + GOOD + "nt-7\twhich?\tcsv/209-csv/9.csv\t1\n")
    with pytest.raises(DataNotFoundError) as raised:
        load_wtq(root, "data/q.tsv")
    message = str(raised.value)
    assert message.startswith(f"{root / 'csv' / '209-csv' / '9.csv'}: WikiTableQuestions table not found")
    assert f"named by {root / 'data' / 'q.tsv'}: line 3 (id nt-7), field 'context'" in message
    assert "paths.data_dir" in message


def test_absolute_question_file_and_no_writes(tmp_path):
    root = _tree(tmp_path, HEADER + GOOD)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    outside = tmp_path / "elsewhere.tsv"
    shutil.copy(root / "data" / "q.tsv", outside)
    assert [e.id for e in load_wtq(root, outside)] == ["nt-0"]
    assert len(read_wtq_questions(root / "data" / "training.tsv")) == 5
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


# --- registry through the composed config ---------------------------------------------------------------


def compose_train(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(("tsv", "total"), [(None, 3), ("data/training.tsv", 5)])
def test_registry_loads_wtq_through_the_composed_config(tmp_path, tsv, total):
    shutil.copytree(FIXTURE_DIR, tmp_path / "wikitablequestions")
    cfg = compose_train("dataset=wtq", f"paths.data_dir={tmp_path}", "dataset.eval_fraction=0.5",
                        "dataset.val_conversations=0", "dataset.max_eval_examples=1",
                        *([f"dataset.tsv={tsv}"] if tsv else []))
    assert cfg.dataset.dir == str(tmp_path / "wikitablequestions")
    assert cfg.dataset.tsv == (tsv or "data/random-split-1-dev.tsv")
    train = load_dataset_split(cfg.dataset, cfg.dataset.train_split, cfg.paths)
    test = load_dataset_split(cfg.dataset, cfg.dataset.eval_split, cfg.paths)
    assert len(train) + len(test) == total
    assert len({e.meta["conversation_id"] for e in train}) == len({e.meta["conversation_id"] for e in test}) == 1
    assert {e.meta["conversation_id"] for e in train}.isdisjoint({e.meta["conversation_id"] for e in test})
    assert {e.meta["split"] for e in train} == {"train"} and {e.meta["split"] for e in test} == {"test"}
    capped = load_dataset_split(cfg.dataset, cfg.dataset.eval_split, cfg.paths,
                                max_examples=cfg.dataset.max_eval_examples)
    assert [e.id for e in capped] == [test[0].id]


# --- the real copy ------------------------------------------------------------------------------------

needs_real_copy = pytest.mark.skipif(not (REAL_DIR / "data" / "training.tsv").is_file(),
                                     reason=f"WikiTableQuestions not found at {REAL_DIR} "
                                            "(set CLARIFYLAB_DATA_DIR to the shared data folder)")


@pytest.fixture(scope="module")
def real_training():
    return load_wtq(REAL_DIR, "data/training.tsv")


@pytest.mark.data
@needs_real_copy
def test_real_question_files_counts(real_training):
    assert len(real_training) == 14152 and len({e.id for e in real_training}) == 14152
    assert len({e.meta["conversation_id"] for e in real_training}) == 1679
    assert sum(len(e.meta["target_values"]) > 1 for e in real_training) == 445
    dev, train = load_wtq(REAL_DIR), load_wtq(REAL_DIR, "data/random-split-1-train.tsv")
    assert (len(dev), len({e.meta["conversation_id"] for e in dev})) == (2831, 346)
    assert (len(train), len({e.meta["conversation_id"] for e in train})) == (11321, 1333)
    assert {e.id for e in dev} | {e.id for e in train} == {e.id for e in real_training}
    assert {e.meta["conversation_id"] for e in dev}.isdisjoint({e.meta["conversation_id"] for e in train})
    first = dev[0]
    assert (first.id, first.history[-1].content, first.response, first.meta["table_path"]) == \
        ("nt-2", "which team won previous to crettyard?", "Wolfe Tones", "csv/204-csv/772.csv")
    assert dev[3].meta["target_values"] == ["Siim Ennemuist", "Andri Aganits"]


@pytest.mark.data
@needs_real_copy
def test_real_tables_all_parse():
    tables = sorted((REAL_DIR / "csv").glob("*-csv/*.csv"))
    assert len(tables) == 2108
    widths = {path: {len(row) for row in read_wtq_table(path)} for path in tables}
    assert all(len(w) == 1 for w in widths.values())   # rectangular (read_wtq_table checks it too)


@pytest.mark.data
@needs_real_copy
def test_real_split_sizes_match_the_config_comments(real_training):
    cfg = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "wtq.yaml")
    cfg.dir = str(REAL_DIR)
    sizes = {split: load_dataset_split(cfg, split, None) for split in ("train", "validation", "test")}
    assert {k: (len({e.meta["conversation_id"] for e in v}), len(v)) for k, v in sizes.items()} == \
        {"train": (267, 2192), "validation": (10, 83), "test": (69, 556)}
    assert sum(e.meta["context_truncated"] for v in sizes.values() for e in v) == 130
    cfg.conversations = 50
    assert len(load_dataset_split(cfg, "train", None)) == 390
