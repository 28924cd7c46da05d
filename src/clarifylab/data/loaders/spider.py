"""Spider (Yu et al., 2018) in its native layout, and the AmbigSQL splits built from it (ACT App. C).

Layout under ``spider_dir`` (``<paths.data_dir>/spider``; see shared/data/SOURCES.md)::

    dev.json                 [{db_id, question, query, ...}]                          1,034 requests
    train_spider_syn.json    [{db_id, SpiderQuestion, SpiderSynQuestion, query}]      7,000 requests
    tables.json              [{db_id, table_names_original, column_names_original,
                               column_types, primary_keys, foreign_keys, ...}]        166 schemas
    database/<db_id>/<db_id>.sqlite                                                   163 of 166 here

A request's text is ``question`` (dev.json) or ``SpiderQuestion`` (train_spider_syn.json: the original
Spider wording; ``SpiderSynQuestion`` is its synonym-substituted variant, which AmbigSQL does not use).

:func:`linearize_schema` writes a schema as the plain text a model reads, one line per table, in the
spirit of the table/column listing of Sun et al. (2023) that ACT App. C uses, plus column types and
keys::

    Table singer (Singer_ID number primary key, Name text, "Home Town" text)
    Table concert (concert_ID number primary key, Stadium_ID text)
    Foreign keys: concert.Stadium_ID = stadium.Stadium_ID

Nothing here writes anywhere.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarifylab.data.loaders.linearize import truncate_text
from clarifylab.data.loaders.native_json import RecordLocation, read_json_file
from clarifylab.data.schema import Example
from clarifylab.errors import ConfigError, DataFormatError, DataNotFoundError

log = logging.getLogger(__name__)

QUESTION_FIELDS = ("question", "SpiderQuestion")
"""Fields that hold a request's text, tried in this order when none is named."""
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SpiderRequest:
    """One fully specified Spider request.

    Attributes:
        id: ``<file stem>-<index:05d>`` (``dev-00012``), unique across Spider's files.
        db_id: the database it queries.
        question: the natural-language request.
        query: the gold SQL.
        source: the file name it came from (``dev.json``).
        index: its position in that file (0-based).
    """

    id: str
    db_id: str
    question: str
    query: str
    source: str
    index: int


@dataclass(frozen=True)
class SpiderSchema:
    """One database schema of tables.json, with Spider's column indexing kept (column 0 is ``*``).

    Attributes:
        db_id: the database.
        tables: original table names.
        columns: ``(table index, original name, type)`` per column; index 0 is ``(-1, "*", "text")``.
        primary_keys: column indices (a composite key's columns flattened).
        foreign_keys: ``(column index, referenced column index)`` pairs.
    """

    db_id: str
    tables: tuple[str, ...]
    columns: tuple[tuple[int, str, str], ...]
    primary_keys: tuple[int, ...]
    foreign_keys: tuple[tuple[int, int], ...]


def spider_database_path(spider_dir: str | os.PathLike[str], db_id: str) -> Path:
    """``<spider_dir>/database/<db_id>/<db_id>.sqlite`` (whether or not it exists)."""
    return Path(spider_dir) / "database" / db_id / f"{db_id}.sqlite"


def _question_field(records: list[Any], path: Path, question_field: str | None) -> str:
    if question_field is not None:
        return question_field
    first = records[0] if records and isinstance(records[0], dict) else {}
    for name in QUESTION_FIELDS:
        if name in first:
            return name
    raise DataFormatError(f"{path}: record 0 has none of the request fields {list(QUESTION_FIELDS)}; pass "
                          f"question_field=<field> or restore the upstream Spider file")


def read_spider_requests(path: str | os.PathLike[str], question_field: str | None = None) -> list[SpiderRequest]:
    """The requests of a Spider question file (dev.json, train_spider_syn.json, ...), in file order.

    Args:
        path: the JSON file (a list of records with ``db_id``, ``query`` and the question field).
        question_field: the field holding the request text; ``None`` = the first of
            :data:`QUESTION_FIELDS` that record 0 has.

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: not a list, or a record without a non-empty ``db_id`` / ``query`` / question
            (names file, record index and field).
    """
    path = Path(path)
    records = read_json_file(path, "Spider", f"spider/{path.name}")
    if not isinstance(records, list):
        raise DataFormatError(f"{path}: must be a list of Spider records, got {type(records).__name__}; restore "
                              f"the upstream file")
    field = _question_field(records, path, question_field)
    stem = path.stem.removesuffix(".json")
    requests = []
    for index, record in enumerate(records):
        where = RecordLocation(path, f"record {index}")
        requests.append(SpiderRequest(
            id=f"{stem}-{index:05d}", db_id=where.text(record, "db_id", "db_id"),
            question=" ".join(where.text(record, field, field).split()),
            query=" ".join(where.text(record, "query", "query").split()), source=path.name, index=index))
    return requests


def _column_indices(value: Any, where: RecordLocation, field: str, n_columns: int) -> list[int]:
    """Flatten a primary-key entry (an index, or a list of indices for a composite key) and range-check."""
    flat = value if isinstance(value, list) else [value]
    for item in flat:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < n_columns:
            raise where.error(field, f"holds {item!r}, not a column index in 1..{n_columns - 1}")
    return list(flat)


def _parse_schema(record: Any, where: RecordLocation) -> SpiderSchema:
    db_id = where.text(record, "db_id", "db_id")
    tables = where.get(record, "table_names_original", "table_names_original", list)
    if not tables or not all(isinstance(t, str) and t.strip() for t in tables):
        raise where.error("table_names_original", "must be a non-empty list of table names")
    names = where.get(record, "column_names_original", "column_names_original", list)
    types = where.get(record, "column_types", "column_types", list)
    if len(names) != len(types):
        raise where.error("column_types", f"has {len(types)} entries for {len(names)} columns")
    columns = []
    for i, (entry, kind) in enumerate(zip(names, types)):
        ok = (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
              and not isinstance(entry[0], bool) and -1 <= entry[0] < len(tables) and isinstance(entry[1], str)
              and isinstance(kind, str))
        if not ok or (entry[0] == -1) != (i == 0):
            raise where.error(f"column_names_original[{i}]", f"must be [table index, name] with a string type "
                              f"(only column 0 belongs to no table), got {entry!r} / {kind!r}")
        columns.append((entry[0], entry[1], kind))
    primary = [index for i, key in enumerate(where.get(record, "primary_keys", "primary_keys", list))
               for index in _column_indices(key, where, f"primary_keys[{i}]", len(columns))]
    foreign = []
    for i, pair in enumerate(where.get(record, "foreign_keys", "foreign_keys", list)):
        if not isinstance(pair, list) or len(pair) != 2:
            raise where.error(f"foreign_keys[{i}]", f"must be [column, referenced column], got {pair!r}")
        source, target = (_column_indices(c, where, f"foreign_keys[{i}]", len(columns)) for c in pair)
        foreign.append((source[0], target[0]))
    return SpiderSchema(db_id, tuple(tables), tuple(columns), tuple(primary), tuple(foreign))


def read_spider_schemas(path: str | os.PathLike[str]) -> dict[str, SpiderSchema]:
    """``db_id -> SpiderSchema`` from tables.json, validated (names file, record and field on error).

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: not a list, a malformed record, or a repeated ``db_id``.
    """
    path = Path(path)
    records = read_json_file(path, "Spider", "spider/tables.json")
    if not isinstance(records, list):
        raise DataFormatError(f"{path}: must be a list of schemas, got {type(records).__name__}; restore the "
                              f"upstream tables.json")
    schemas: dict[str, SpiderSchema] = {}
    for index, record in enumerate(records):
        where = RecordLocation(path, f"schema {index}")
        schema = _parse_schema(record, where)
        if schema.db_id in schemas:
            raise where.error("db_id", f"{schema.db_id!r} repeats an earlier schema")
        schemas[schema.db_id] = schema
    return schemas


def check_requests_have_schemas(requests: Iterable[SpiderRequest], schemas: dict[str, SpiderSchema]) -> None:
    """Raise :class:`DataFormatError` naming the first request whose ``db_id`` is not in tables.json."""
    for request in requests:
        if request.db_id not in schemas:
            raise DataFormatError(f"{request.source}: record {request.index}: db_id {request.db_id!r} has no schema "
                                  f"in tables.json; use the tables.json that ships with these questions")


def _quoted(name: str) -> str:
    """A column/table name as SQL would need it: plain identifiers bare, anything else double-quoted."""
    return name if _PLAIN_IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'


def table_line(schema: SpiderSchema, table: int) -> str:
    """``Table <name> (<column> <type>[ primary key], ...)`` for table index ``table``."""
    primary = set(schema.primary_keys)
    columns = [f"{_quoted(name)} {kind}{' primary key' if i in primary else ''}"
               for i, (owner, name, kind) in enumerate(schema.columns) if owner == table]
    return f"Table {_quoted(schema.tables[table])} ({', '.join(columns)})"


def _column_ref(schema: SpiderSchema, column: int) -> str:
    owner, name, _ = schema.columns[column]
    return f"{_quoted(schema.tables[owner])}.{_quoted(name)}"


def linearize_schema(schema: SpiderSchema, max_chars: int | None = None, first_tables: Sequence[str] = ()) -> str:
    """The schema as text: one :func:`table_line` per table, then a ``Foreign keys:`` line.

    Args:
        schema: the database schema.
        max_chars: bound on the result. Whole tables are kept while they fit (foreign keys only between kept
            tables), then ``(N more tables not shown)``; a first table longer than the bound is cut by
            :func:`~clarifylab.data.loaders.linearize.truncate_text`. ``None`` keeps everything.
        first_tables: table names (case-insensitive) listed first, e.g. those a gold query uses, so they
            survive the cut; the others follow in schema order.

    Raises:
        ValueError: ``max_chars`` too small to hold anything (see ``truncate_text``).
    """
    wanted = [name.lower() for name in first_tables]
    order = sorted(range(len(schema.tables)),
                   key=lambda t: (wanted.index(schema.tables[t].lower()) if schema.tables[t].lower() in wanted
                                  else len(wanted), t))
    kept: list[int] = []
    lines: list[str] = []
    for position, table in enumerate(order):
        line = table_line(schema, table)
        remaining = len(order) - position - 1
        budget_note = len(f"\n({remaining} more tables not shown)") if remaining else 0
        candidate = "\n".join(lines + [line])
        if max_chars is not None and lines and len(candidate) + budget_note > max_chars:
            lines.append(f"({len(order) - position} more tables not shown)")
            break
        lines.append(line)
        kept.append(table)
    keys = [f"{_column_ref(schema, a)} = {_column_ref(schema, b)}" for a, b in schema.foreign_keys
            if schema.columns[a][0] in kept and schema.columns[b][0] in kept]
    text = "\n".join(lines)
    if keys:
        with_keys = f"{text}\nForeign keys: {', '.join(keys)}"
        if max_chars is None or len(with_keys) <= max_chars:
            text = with_keys
    return truncate_text(text, max_chars)


# ------------------------------------------------------------------------------------ AmbigSQL (generated) splits


def load_ambigsql_split(out_dir: str | os.PathLike[str], split: str, conversations: int | None = None,
                        subset_seed: int = 0) -> list[Example]:
    """Examples of one AmbigSQL split written by ``python generate.py task=ambigsql`` (``<out_dir>/<split>.jsonl``).

    Args:
        out_dir: the build's output folder (``dataset.dir``).
        split: ``train`` / ``validation`` / ``test``.
        conversations: keep only this many (clarify, answer) pairs, chosen by
            :func:`~clarifylab.data.splits.subset_conversations` over ``meta["conversation_id"]`` (the pair id;
            nested for a fixed ``subset_seed``: ACT's 50 / 100 / 250-conversation settings); ``None`` = all.
        subset_seed: seeds that choice.

    Raises:
        DataNotFoundError: the split file is missing (says how to build it).
        ConfigError: ``conversations`` exceeds the pairs of the split.
    """
    from clarifylab.data.jsonl import read_examples
    from clarifylab.data.splits import subset_conversations

    path = Path(out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"{path}: AmbigSQL split {split!r} not found. Build it with `python generate.py "
                                f"task=ambigsql teacher@task.teacher=<backend>` (it writes train/validation/test.jsonl "
                                f"into task.out_dir), or point dataset.dir at an existing build")
    examples = read_examples(path)
    if conversations is None:
        return examples
    pairs = list(dict.fromkeys(str(e.meta.get("conversation_id", e.id)) for e in examples))
    try:
        chosen = set(subset_conversations(pairs, conversations, subset_seed))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return [e for e in examples if str(e.meta.get("conversation_id", e.id)) in chosen]
