"""WikiTableQuestions (Pasupat & Liang, ACL 2015; github ppasupat/WikiTableQuestions) native files -> Examples.

The upstream folder holds question files ``data/*.tsv`` (``training.tsv``, ``random-split-<k>-{train,
dev}.tsv``, ...) and tables ``csv/<n>-csv/<m>.csv``; every path below is relative to that folder.

Question files (upstream README, "About TSV Format"): a header line ``id, utterance, context,
targetValue``, then one tab-separated record per line; ``context`` is a table path
(``csv/204-csv/772.csv``); ``targetValue`` lists the answer's values separated by ``|``; inside a field
a newline is written ``\\n``, a backslash ``\\\\`` and a pipe ``\\p`` (:func:`unescape_tsv`).

Tables: comma-separated, cells quoted with ``"``; a quote inside a cell is ``\\"`` (or ``""``), a
backslash ``\\\\``; quoted cells may hold commas and newlines. They are read with the ``csv`` module
(:func:`read_wtq_table`); the first row is the header and every row must have the header's width.

Every question is fully specified, so each one is one Example with action ``answer``:

- ``id``: the question ``id`` (``nt-2``; unique in the file); ``history``: ``[Turn("user", utterance)]``
  (unescaped, stripped).
- ``response`` = ``goal[0]``: the target values joined by ``", "`` (each with its whitespace runs
  collapsed, as in the context), e.g. ``"Siim Ennemuist, Andri Aganits"``. ``goal`` holds this one
  string: the values are all parts of one answer, not alternatives (a scorer takes the best of
  ``goal``'s entries). A value may itself hold ``", "`` (``"March 21, 1964"``): the scorer compares against
  the list ``meta["target_values"]``, never this joined string
  (:func:`~clarifylab.metrics.wtq_denotation.denotation_match` regroups the text's pieces).
- ``context``: the table via :func:`~clarifylab.data.loaders.linearize.linearize_table_and_text`
  (header row first), optionally bounded by ``max_context_chars``.
- ``meta``: conversation_id (= table_path, the ``context`` field: questions about one table stay in
  one split), ``target_values`` (each value unescaped and stripped, in file order: what a WTQ
  denotation scorer compares), ``target_value_raw`` (the field as written in the file), question_file
  (the TSV as configured), line (1-based line in it), table_rows (data rows, header excluded),
  table_columns and context_truncated.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clarifylab.data.loaders.linearize import clean_cell, linearize_table_and_text
from clarifylab.data.loaders.native_json import RecordLocation
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError

TASK = "wtq"
DEFAULT_TSV = "data/random-split-1-dev.tsv"
EXPECTED_DIR = "wikitablequestions"
HEADER = ("id", "utterance", "context", "targetValue")
_TSV_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_TSV_UNESCAPED = {"n": "\n", "\\": "\\", "p": "|"}


def unescape_tsv(text: str) -> str:
    """A WTQ TSV field with its escapes undone, left to right: ``\\n`` -> newline, ``\\\\`` -> ``\\``,
    ``\\p`` -> ``|``; any other backslash is kept as it is."""
    return _TSV_ESCAPE.sub(lambda match: _TSV_UNESCAPED.get(match.group(1), match.group(0)), text)


def split_target_values(field: str) -> list[str]:
    """The values of a ``targetValue`` field: split on ``|`` first (an escaped ``\\p`` is not a
    separator), then each value unescaped and stripped. ``"a|b\\pc"`` -> ``["a", "b|c"]``."""
    return [unescape_tsv(value).strip() for value in field.split("|")]


@dataclass(frozen=True)
class WtqQuestion:
    """One checked record of a WTQ question file; ``line`` is its 1-based line number."""

    id: str
    utterance: str
    table_path: str
    target_values: list[str]
    target_value_raw: str
    line: int


def _not_found(path: Path, what: str, option: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{path}: WikiTableQuestions {what} not found. Point `{option}` at it (dataset.dir = the upstream "
        f"WikiTableQuestions folder holding data/ and csv/, dataset.tsv = a question file inside it), or set "
        f"`paths.data_dir` (env CLARIFYLAB_DATA_DIR) to the folder that holds {EXPECTED_DIR}/ "
        f"(see shared/data/SOURCES.md).")


def _rows(path: Path, **reader_options: object) -> Iterator[tuple[int, list[str]]]:
    """``(line number where the row ends, row)`` for each row of a delimited UTF-8 text file.

    Raises:
        DataFormatError: not UTF-8, or the ``csv`` module rejects the text (names file and line).
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, **reader_options)
            try:
                for row in reader:
                    yield reader.line_num, row
            except csv.Error as error:
                raise DataFormatError(f"{path}: line {reader.line_num}: not valid WikiTableQuestions "
                                      f"{path.suffix.lstrip('.').upper()} ({error}); restore the upstream "
                                      f"file") from error
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); restore the "
                              f"upstream file") from error


def read_wtq_table(path: str | os.PathLike[str]) -> list[list[str]]:
    """The rows of a WTQ table CSV (header first), cells as in the file after unquoting.

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: not UTF-8, broken quoting (e.g. an unterminated quoted cell), no header, or a
            row whose width differs from the header's (names file, row and line).
    """
    path = Path(path)
    if not path.is_file():
        raise _not_found(path, "table", "dataset.dir")
    rows: list[list[str]] = []
    for line, row in _rows(path, escapechar="\\", strict=True):
        if rows and len(row) != len(rows[0]):
            raise RecordLocation(path, f"row {len(rows)} (ending on line {line})").error(
                "(row)", f"has {len(row)} cells but the header has {len(rows[0])}: a quote is probably "
                         f"unbalanced")
        rows.append(row)
    if not rows:
        raise RecordLocation(path, "top level").error("(header)", "is missing: the file is empty")
    return rows


def _check_table_path(value: str, location: RecordLocation) -> str:
    """The ``context`` field: a relative ``.csv`` path that stays inside the WTQ folder."""
    parts = PurePosixPath(value)
    if not value or parts.is_absolute() or ".." in parts.parts or parts.suffix != ".csv":
        raise location.error("context", f"is {value!r}; expected a table path inside the WikiTableQuestions "
                                        f"folder such as 'csv/204-csv/772.csv'")
    return value


def _read_record(line: int, row: list[str], path: Path) -> WtqQuestion:
    """A checked :class:`WtqQuestion` from one TSV row."""
    record_id = row[0].strip() if row else ""
    location = RecordLocation(path, f"line {line}" + (f" (id {record_id})" if record_id else ""))
    if len(row) != len(HEADER):
        raise location.error("(record)", f"has {len(row)} tab-separated fields; expected {len(HEADER)} "
                                         f"({', '.join(HEADER)})")
    if not record_id:
        raise location.error("id", "is empty")
    utterance = unescape_tsv(row[1]).strip()
    if not utterance:
        raise location.error("utterance", "is empty")
    values = split_target_values(row[3])
    for k, value in enumerate(values):
        if not value:
            raise location.error("targetValue", f"value {k + 1} of {len(values)} is empty (in {row[3]!r}); values "
                                                f"are separated by '|', a literal pipe is written '\\p'")
    return WtqQuestion(record_id, utterance, _check_table_path(row[2].strip(), location), values, row[3], line)


def read_wtq_questions(path: str | os.PathLike[str]) -> list[WtqQuestion]:
    """Every record of a WTQ question file, checked, in file order (blank lines are skipped).

    Raises:
        DataNotFoundError: no such file (names the path, ``dataset.dir``/``dataset.tsv`` and
            ``paths.data_dir``).
        DataFormatError: wrong header, a record with the wrong number of fields, an empty id, utterance
            or target value, a bad table path, or a repeated id (names file, line, id and field).
    """
    path = Path(path)
    if not path.is_file():
        raise _not_found(path, "question file", "dataset.tsv")
    questions: list[WtqQuestion] = []
    seen: dict[str, int] = {}
    header = None
    for line, row in _rows(path, delimiter="\t", quoting=csv.QUOTE_NONE):
        if not row:
            continue
        if header is None:
            header = tuple(cell.strip() for cell in row)
            if header != HEADER:
                raise RecordLocation(path, f"line {line}").error("(header)", f"is {list(header)}; expected "
                                                                             f"{list(HEADER)}")
            continue
        question = _read_record(line, row, path)
        if question.id in seen:
            raise RecordLocation(path, f"line {line} (id {question.id})").error(
                "id", f"repeats line {seen[question.id]}; ids must be unique")
        seen[question.id] = line
        questions.append(question)
    if header is None:
        raise RecordLocation(path, "top level").error("(header)", "is missing: the file is empty")
    return questions


def load_wtq(data_dir: str | os.PathLike[str], tsv: str | os.PathLike[str] = DEFAULT_TSV,
             max_context_chars: int | None = None) -> list[Example]:
    """Every question of a WTQ question file as an ``answer`` Example, in file order.

    Args:
        data_dir: the upstream WikiTableQuestions folder (holds ``data/`` and ``csv/``).
        tsv: the question file, relative to ``data_dir`` (``data/random-split-1-dev.tsv``,
            ``data/training.tsv``, ...) or absolute; table paths stay relative to ``data_dir``.
        max_context_chars: bound on ``Example.context`` (``None``: the whole table).

    Raises:
        DataNotFoundError: the question file or a table it names is missing.
        DataFormatError: see :func:`read_wtq_questions` and :func:`read_wtq_table`. An error about a
            table also names the first record that refers to it.
    """
    data_dir = Path(data_dir)
    tsv_path = data_dir / tsv
    tables: dict[str, tuple[list[list[str]], str, bool]] = {}
    examples = []
    for question in read_wtq_questions(tsv_path):
        if question.table_path not in tables:
            try:
                rows = read_wtq_table(data_dir / question.table_path)
            except (DataNotFoundError, DataFormatError) as error:
                raise type(error)(f"{error} (table named by {tsv_path}: line {question.line} (id {question.id}), "
                                  f"field 'context')") from error
            text = linearize_table_and_text(rows, [], max_context_chars)
            tables[question.table_path] = (rows, text, len(text) < len(linearize_table_and_text(rows, [])))
        rows, text, truncated = tables[question.table_path]
        response = ", ".join(clean_cell(value) for value in question.target_values)
        meta = {"conversation_id": question.table_path, "table_path": question.table_path,
                "target_values": list(question.target_values), "target_value_raw": question.target_value_raw,
                "question_file": str(tsv), "line": question.line, "table_rows": len(rows) - 1,
                "table_columns": len(rows[0]), "context_truncated": truncated}
        examples.append(Example(id=question.id, task=TASK, context=text, history=[Turn("user", question.utterance)],
                                response=response, action=Action.ANSWER, goal=[response], meta=meta))
    return examples
