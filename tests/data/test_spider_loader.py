"""Spider loader: requests from both question-file layouts, validated schemas, the linearized schema (exact
text, quoting, keys, cuts), errors that name file/record/field, the AmbigSQL split reader, and counts on the
real copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clarifylab.data.loaders.spider import (SpiderRequest, check_requests_have_schemas, linearize_schema,
                                            load_ambigsql_split, read_spider_requests, read_spider_schemas,
                                            spider_database_path, table_line)
from clarifylab.errors import ConfigError, DataFormatError, DataNotFoundError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "spider_small"
DATA_DIR = Path(os.environ.get("CLARIFYLAB_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data"))
REAL_SPIDER = DATA_DIR / "spider"


@pytest.fixture()
def spider(tmp_path, build_spider_tree) -> Path:
    return build_spider_tree(tmp_path / "spider")


def test_dev_layout_requests_in_file_order():
    requests = read_spider_requests(FIXTURE / "dev.json")
    assert [r.id for r in requests] == [f"dev-0000{i}" for i in range(6)]
    assert requests[1] == SpiderRequest(
        id="dev-00001", db_id="school", question="List the names of math teachers from the oldest to the youngest.",
        query="SELECT name FROM teacher WHERE subject = 'math' ORDER BY age DESC", source="dev.json", index=1)
    assert requests[4].question == "What is the average height of the animals?"  # whitespace runs collapsed


def test_spider_syn_layout_uses_the_original_spider_question():
    requests = read_spider_requests(FIXTURE / "train_spider_syn.json")
    assert [(r.id, r.db_id, r.question) for r in requests] == [
        ("train_spider_syn-00000", "zoo", "Show the species of every animal."),
        ("train_spider_syn-00001", "ghost", "List all spirit names."),
        ("train_spider_syn-00002", "school", "What is the total number of students in classes taught by Ada?")]
    synonyms = read_spider_requests(FIXTURE / "train_spider_syn.json", question_field="SpiderSynQuestion")
    assert synonyms[0].question == "Display the kind of every creature."


def test_schemas_keep_spider_indexing_and_flatten_composite_keys():
    schemas = read_spider_schemas(FIXTURE / "tables.json")
    assert list(schemas) == ["school", "zoo", "ghost"]
    school = schemas["school"]
    assert school.tables == ("teacher", "class")
    assert school.columns[0] == (-1, "*", "text") and school.columns[7] == (1, "Home Room", "text")
    assert school.primary_keys == (1, 5, 6)
    assert school.foreign_keys == ((6, 1),)


def test_linearized_schema_exact_text():
    school = read_spider_schemas(FIXTURE / "tables.json")["school"]
    assert linearize_schema(school) == (
        "Table teacher (teacher_id number primary key, name text, subject text, age number)\n"
        'Table class (class_id number primary key, teacher_id number primary key, "Home Room" text, students number)\n'
        "Foreign keys: class.teacher_id = teacher.teacher_id")


def test_linearized_schema_cut_keeps_whole_tables_and_the_wanted_ones_first():
    school = read_spider_schemas(FIXTURE / "tables.json")["school"]
    class_line = table_line(school, 1)
    cut = linearize_schema(school, max_chars=len(class_line) + 40, first_tables=["CLASS"])
    assert cut == f"{class_line}\n(1 more tables not shown)"  # no foreign key: its other end is cut
    assert len(cut) <= len(class_line) + 40
    # Everything fits: schema order is kept apart from the wanted table, and the key line comes back.
    assert linearize_schema(school, max_chars=10_000, first_tables=["class"]).splitlines()[0] == class_line
    # A single table longer than the bound is cut inside, with the truncation marker.
    assert linearize_schema(school, max_chars=40).endswith(" [...]")
    assert len(linearize_schema(school, max_chars=40)) <= 40


def test_database_path_and_schema_check(spider):
    assert spider_database_path(spider, "zoo") == spider / "database" / "zoo" / "zoo.sqlite"
    assert spider_database_path(spider, "zoo").is_file()
    assert not spider_database_path(spider, "ghost").exists()
    schemas = read_spider_schemas(spider / "tables.json")
    check_requests_have_schemas(read_spider_requests(spider / "dev.json"), schemas)
    del schemas["zoo"]
    with pytest.raises(DataFormatError, match=r"dev.json: record 3: db_id 'zoo' has no schema in tables.json"):
        check_requests_have_schemas(read_spider_requests(spider / "dev.json"), schemas)


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_request_errors_name_file_record_and_field(tmp_path):
    records = json.loads((FIXTURE / "dev.json").read_text())
    records[2]["query"] = "  "
    path = _write(tmp_path, "dev.json", records)
    with pytest.raises(DataFormatError, match=rf"{path}: record 2: field 'query' is empty"):
        read_spider_requests(path)
    del records[2]["query"]
    with pytest.raises(DataFormatError, match="record 2: field 'query' is missing"):
        read_spider_requests(_write(tmp_path, "dev.json", records))
    with pytest.raises(DataFormatError, match="must be a list of Spider records"):
        read_spider_requests(_write(tmp_path, "dev.json", {"data": records}))
    with pytest.raises(DataFormatError, match="none of the request fields"):
        read_spider_requests(_write(tmp_path, "odd.json", [{"db_id": "x", "query": "SELECT 1", "text": "hi"}]))
    missing = tmp_path / "nowhere" / "dev.json"
    with pytest.raises(DataNotFoundError) as raised:
        read_spider_requests(missing)
    assert str(missing) in str(raised.value) and "paths.data_dir" in str(raised.value)


def test_schema_errors_name_file_schema_and_field(tmp_path):
    def broken(mutate):
        schemas = json.loads((FIXTURE / "tables.json").read_text())
        mutate(schemas)
        return _write(tmp_path, "tables.json", schemas)

    with pytest.raises(DataFormatError, match=r"schema 0: field 'primary_keys\[1\]' holds 9, not a column index"):
        read_spider_schemas(broken(lambda s: s[0].__setitem__("primary_keys", [1, [5, 9]])))
    with pytest.raises(DataFormatError, match=r"schema 1: field 'column_types' has 4 entries for 5 columns"):
        read_spider_schemas(broken(lambda s: s[1]["column_types"].pop()))
    with pytest.raises(DataFormatError, match=r"schema 1: field 'column_names_original\[2\]'"):
        read_spider_schemas(broken(lambda s: s[1]["column_names_original"].__setitem__(2, [5, "name"])))
    with pytest.raises(DataFormatError, match=r"schema 2: field 'db_id' 'school' repeats an earlier schema"):
        read_spider_schemas(broken(lambda s: s[2].__setitem__("db_id", "school")))
    with pytest.raises(DataFormatError, match=r"schema 0: field 'foreign_keys\[0\]' must be \[column, referenced"):
        read_spider_schemas(broken(lambda s: s[0].__setitem__("foreign_keys", [[6]])))


def test_loading_does_not_touch_the_data_folder(spider):
    before = {p: p.stat().st_mtime_ns for p in spider.rglob("*")}
    read_spider_requests(spider / "dev.json")
    read_spider_schemas(spider / "tables.json")
    assert {p: p.stat().st_mtime_ns for p in spider.rglob("*")} == before


def test_ambigsql_split_reader_subsets_pairs_nested(tmp_path):
    from clarifylab.data.jsonl import write_examples
    from clarifylab.data.schema import Action, Clarification, Example, Turn

    examples = []
    for i in range(6):
        meta = {"conversation_id": f"p{i}", "db_id": "zoo"}
        examples.append(Example(f"p{i}-clarify", "ambigsql", "", [Turn("user", "vague")], "which?", Action.CLARIFY,
                                ["SELECT 1"], [Clarification("clear", "SELECT 1")], meta))
        examples.append(Example(f"p{i}-answer", "ambigsql", "", [Turn("user", "clear")], "SELECT 1", Action.ANSWER,
                                ["SELECT 1"], meta=meta))
    write_examples(tmp_path / "train.jsonl", examples)
    assert load_ambigsql_split(tmp_path, "train") == examples
    two = load_ambigsql_split(tmp_path, "train", conversations=2, subset_seed=1)
    four = load_ambigsql_split(tmp_path, "train", conversations=4, subset_seed=1)
    assert len(two) == 4 and len(four) == 8 and {e.id for e in two} <= {e.id for e in four}
    assert sum(e.action is Action.CLARIFY for e in four) == 4  # pairs stay whole
    with pytest.raises(ConfigError, match="train.jsonl"):
        load_ambigsql_split(tmp_path, "train", conversations=7)
    with pytest.raises(DataNotFoundError, match="python generate.py task=ambigsql"):
        load_ambigsql_split(tmp_path, "test")


# --- the real copy ------------------------------------------------------------------------------------

needs_real_copy = pytest.mark.skipif(not (REAL_SPIDER / "dev.json").is_file(),
                                     reason=f"Spider not found at {REAL_SPIDER} (set CLARIFYLAB_DATA_DIR to the shared "
                                            "data folder)")


@pytest.mark.data
@needs_real_copy
def test_real_copy_counts():
    schemas = read_spider_schemas(REAL_SPIDER / "tables.json")
    assert len(schemas) == 166
    dev = read_spider_requests(REAL_SPIDER / "dev.json")
    train = read_spider_requests(REAL_SPIDER / "train_spider_syn.json")
    check_requests_have_schemas(dev + train, schemas)
    assert len(dev) == 1034 and len(train) == 7000
    assert sum(spider_database_path(REAL_SPIDER, r.db_id).is_file() for r in dev) == 972
    assert sum(spider_database_path(REAL_SPIDER, r.db_id).is_file() for r in train) == 6904
    assert {r.db_id for r in dev if not spider_database_path(REAL_SPIDER, r.db_id).is_file()} == {"wta_1"}
    assert dev[0].question == "How many singers do we have?" and dev[0].query == "SELECT count(*) FROM singer"
    text = linearize_schema(schemas["concert_singer"])
    assert text.startswith("Table stadium (Stadium_ID number primary key, Location text, Name text, ")
    assert text.endswith("singer_in_concert.concert_ID = concert.concert_ID")
    assert max(len(linearize_schema(s)) for s in schemas.values()) == 6044
