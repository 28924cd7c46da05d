"""Table questions in structured form (table rows, paragraphs, question, lookup values), for the builders
that edit a table rather than its linearized text (the teacher-student curriculum's ablation strategies,
``data/ablation_strategies.py``).

A :class:`TableTask` keeps the loader's :class:`~clarifylab.data.schema.Example` (its task, gold answer and
the ``meta`` the task heuristic H reads) beside the grid the Example's ``context`` was linearized from, and the
**lookup values**: the strings a reader must find in the table to answer:

- WTQ: ``meta["target_values"]`` (the denotation's values);
- TAT-QA span / multi-span: the answer spans; count: the ``##``-separated items of the derivation;
  arithmetic: the numbers (operands) of the derivation (``"44.1-56.7"`` -> ``44.1``, ``56.7``).

:func:`lookup_cells` finds the cells holding a lookup value (:func:`normalize_value`: case, currency signs,
thousands separators, ``%`` and accounting parentheses ignored; numbers compared as numbers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clarifylab.data.loaders.linearize import clean_cell
from clarifylab.data.loaders.tatqa import context_examples, read_tatqa_contexts
from clarifylab.data.loaders.wtq import load_wtq, read_wtq_table
from clarifylab.data.schema import Example

_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+")
_STRIP = re.compile(r"[\s$€£%,]")


@dataclass(frozen=True)
class TableTask:
    """One table question: its source Example, the grid (header row first), paragraphs, the question and the
    lookup values (module docstring)."""

    example: Example
    table: tuple[tuple[str, ...], ...]
    paragraphs: tuple[str, ...]
    question: str
    lookup_values: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.example.id


def normalize_value(text: str) -> str:
    """A cell or answer value reduced for comparison: cleaned, lower-cased, ``$ € £ % ,`` and spaces removed,
    accounting parentheses ``(12)`` read as ``12``, a trailing ``.0`` of a number dropped."""
    value = _STRIP.sub("", clean_cell(str(text)).lower())
    if value.startswith("(") and value.endswith(")"):
        value = value[1:-1]
    try:
        number = float(value)
    except ValueError:
        return value
    return repr(abs(number)) if number == number else value


def lookup_cells(table: Sequence[Sequence[str]], values: Sequence[str]) -> list[tuple[int, int]]:
    """``(row, column)`` of every data cell (row >= 1: the header row 0 is not a value) whose normalized text
    equals a normalized lookup value, in row-major order."""
    wanted = {normalize_value(v) for v in values if normalize_value(v)}
    return [(r, c) for r, row in enumerate(table) if r >= 1 for c, cell in enumerate(row)
            if normalize_value(cell) in wanted]


def values_present(table: Sequence[Sequence[str]], paragraphs: Sequence[str], values: Sequence[str]) -> list[str]:
    """The lookup values still found in ``table`` (any cell, header included) or, as whole numbers/words, in the
    paragraphs."""
    cells = {normalize_value(cell) for row in table for cell in row}
    text = " ".join(paragraphs)
    present = []
    for value in values:
        key = normalize_value(value)
        if not key:
            continue
        in_text = bool(text) and re.search(rf"(?<![\w.]){re.escape(clean_cell(value))}(?![\w]|\.\d)", text, re.I)
        if key in cells or in_text:
            present.append(value)
    return present


def answer_distractors(task: TableTask) -> list[str]:
    """The other values of the column(s) holding the task's lookup cells: the data cells of those columns that
    are neither a lookup value nor the gold (distinct, in row-major order). A reply that names one of them is not
    read as naming the answer (``metrics/answer_mention.py``)."""
    columns = sorted({c for _, c in lookup_cells(task.table, task.lookup_values)})
    keep = {normalize_value(v) for v in (*task.lookup_values, *task.example.goal)}
    out: list[str] = []
    for row in task.table[1:]:
        for c in columns:
            cell = clean_cell(row[c]) if c < len(row) else ""
            if cell and normalize_value(cell) not in keep and cell not in out:
                out.append(cell)
    return out


def tatqa_lookup_values(meta: dict) -> tuple[str, ...]:
    """TAT-QA lookup values from a question's meta (module docstring)."""
    answer_type, answer, derivation = meta.get("answer_type"), meta.get("answer"), str(meta.get("derivation") or "")
    if answer_type in ("span", "multi-span"):
        return tuple(str(a) for a in (answer if isinstance(answer, list) else [answer]))
    if answer_type == "count":
        return tuple(part.strip() for part in derivation.split("##") if part.strip())
    return tuple(dict.fromkeys(_NUMBER.findall(derivation)))


def load_tatqa_tasks(path: str | os.PathLike[str], max_context_chars: int | None = None) -> list[TableTask]:
    """Every TAT-QA question of ``path`` as a :class:`TableTask`, in file order."""
    tasks = []
    for context in read_tatqa_contexts(path):
        table = tuple(tuple(row) for row in context.table)
        paragraphs = tuple(context.paragraphs)
        for example in context_examples(context, max_context_chars):
            tasks.append(TableTask(example, table, paragraphs, example.history[-1].content,
                                   tatqa_lookup_values(example.meta)))
    return tasks


def load_wtq_tasks(data_dir: str | os.PathLike[str], tsv: str, max_context_chars: int | None = None) -> list[TableTask]:
    """Every WTQ question of ``<data_dir>/<tsv>`` as a :class:`TableTask`, in file order (the Examples of
    :func:`~clarifylab.data.loaders.wtq.load_wtq`, each with its table grid)."""
    tables: dict[str, tuple[tuple[str, ...], ...]] = {}
    tasks = []
    for example in load_wtq(data_dir, tsv, max_context_chars):
        path = example.meta["table_path"]
        if path not in tables:
            tables[path] = tuple(tuple(row) for row in read_wtq_table(Path(data_dir) / path))
        tasks.append(TableTask(example, tables[path], (), example.history[-1].content,
                               tuple(example.meta["target_values"])))
    return tasks
