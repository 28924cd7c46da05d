"""Information-ablation strategies over table questions (the teacher-student curriculum's ``ablation`` group,
Poelitz & McKenna 2025; method-free, so any builder of underspecified tasks can reuse them).

A strategy takes a fully specified :class:`~clarifylab.data.table_tasks.TableTask` and the **needed
information** (:class:`NeededInfo`: which column, row, cell and question span the answer rests on) and returns
an :class:`Ablated` task with exactly one piece removed, plus a :class:`Removed` record of what was removed, as
data a simulated user can give back (``user_text``), or a :class:`Refusal` with a reason (counted by builders):

==========  ===========================================================================================
column      drop the needed column from every row (header included)
row         drop the needed row
value       ``value_mode=remove``: blank the needed cell; ``alter``: replace it with another value of the same
            column (seeded choice among the column's values that are not lookup values)
question    underspecify the question: cut a period (a year, with its preposition), else an entity named in
            the table (a row label / cell value the question quotes), else a unit phrase (``in millions``);
            ``question_mode=rule`` cuts the span itself (reversible: ``position`` says where),
            ``teacher`` takes the teacher's rewrite when it leaves the span out (see :func:`accept_rewrite`)
==========  ===========================================================================================

Refusal reasons: ``no_answer_cell_or_span`` (identification), ``answer_from_text``, ``answer_not_in_table``,
``aggregate_question`` (WTQ counts and sums), ``single_column``, ``single_row``, ``no_alternative_value``,
``answer_still_derivable`` (the lookup check), ``no_removable_span``, ``too_short_after_cut``,
``teacher_rewrite_rejected``.

**Verification by lookup.** A table ablation is kept only when the answer is no longer derivable by looking
it up: for a span / WTQ answer no lookup value is left anywhere in the table or the paragraphs; for an
arithmetic answer at least one operand is gone (:func:`~clarifylab.data.table_tasks.values_present`).
Everything else is byte-identical to the source (cells, other rows, paragraphs, question; tests check it).

**Determinism.** Every choice draws from ``random.Random(f"{seed}:{strategy}:{task id}")``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from clarifylab.data.loaders.linearize import clean_cell, linearize_table_and_text
from clarifylab.data.schema import Example, Turn
from clarifylab.data.table_tasks import TableTask, lookup_cells, normalize_value, values_present
from clarifylab.errors import ConfigError

STRATEGIES = ("column", "row", "value", "question")
TABLE_STRATEGIES = ("column", "row", "value")

_PERIOD = re.compile(r"(?:\s+(?:in|for|during|of|at|on|as of|from))?(?:\s+(?:the\s+)?(?:fiscal\s+)?(?:year|fy)s?)?"
                     r"\s+(?:19|20)\d{2}\b")
_AGGREGATE = re.compile(r"\s*(how many|how much|what is the (total|number|sum|average|difference))\b", re.I)
"""WTQ questions whose answer is computed (a count, a sum...): a cell equal to it is no evidence, so table
strategies refuse them (``aggregate_question``)."""
_UNIT = re.compile(r"\s*\(?\s*\b(?:in\s+)?(?:millions?|thousands?|billions?|percent(?:age)?)\b\s*\)?", re.I)


def check_strategies(names: Sequence[str]) -> list[str]:
    """``names`` as a list, each one of :data:`STRATEGIES`, without repeats.

    Raises:
        ConfigError: an unknown or repeated strategy (the message lists the known ones).
    """
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or len(set(names)) != len(names) or not names:
        raise ConfigError(f"ablation.strategies={names} must be distinct names from {list(STRATEGIES)} "
                          "(conf/ablation/*.yaml)")
    return names


@dataclass(frozen=True)
class NeededInfo:
    """What the answer rests on (identified by the teacher or :func:`identify_needed_info`)."""

    column: int | None
    row: int | None
    cell: tuple[int, int] | None
    span: str | None
    span_kind: str | None
    source: str = "rule"


@dataclass(frozen=True)
class Removed:
    """What a strategy removed: enough for a simulated user to give it back.

    Attributes:
        strategy: ``column`` | ``row`` | ``value`` | ``question``.
        what: ``column`` / ``row`` / ``cell`` / ``period`` / ``entity`` / ``unit``.
        column, row: indices in the source table (``None`` where not applicable).
        header: the removed column's header (column, value), or the row's label (row).
        values: removed cells as ``[label, value]`` pairs (a column: one per data row, labelled by the row's first
            cell; a row: one per column, labelled by the header; a cell: one pair ``[row label + header, old value]``).
        new_value: the value written in its place (``value_mode=alter``), else ``None``.
        span: the removed question text (question), exactly as cut; ``position`` its offset in the ablated question.
        user_text: the sentence a user says to supply it.
    """

    strategy: str
    what: str
    column: int | None = None
    row: int | None = None
    header: str | None = None
    values: list[list[str]] = field(default_factory=list)
    new_value: str | None = None
    span: str | None = None
    position: int | None = None
    user_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ablated:
    """A task with one piece of information removed."""

    task: TableTask
    strategy: str
    table: tuple[tuple[str, ...], ...]
    paragraphs: tuple[str, ...]
    question: str
    removed: Removed


@dataclass(frozen=True)
class Refusal:
    """A task a strategy cannot ablate, and why (a short snake_case reason)."""

    strategy: str
    reason: str


def task_rng(seed: int, strategy: str, task_id: str) -> random.Random:
    """The per-(seed, strategy, task) random source (module docstring)."""
    return random.Random(f"{seed}:{strategy}:{task_id}")


def _row_label(table: Sequence[Sequence[str]], r: int) -> str:
    label = clean_cell(table[r][0]) if table[r] else ""
    return label or f"row {r}"


def _header(table: Sequence[Sequence[str]], c: int) -> str:
    header = clean_cell(table[0][c]) if c < len(table[0]) else ""
    return header or f"column {c + 1}"


def question_spans(task: TableTask) -> list[tuple[str, int, int]]:
    """Candidate ``(kind, start, end)`` spans of the question a user could leave out, periods first, then
    entities (a first-column value or any other cell value of >= 4 characters quoted in the question, longest
    first), then units; the spans do not overlap earlier ones."""
    question = task.question
    found: list[tuple[str, int, int]] = []
    for match in _PERIOD.finditer(question):
        found.append(("period", match.start(), match.end()))
    cells = sorted({clean_cell(cell) for row in task.table[1:] for cell in row if len(clean_cell(cell)) >= 4
                    and not re.fullmatch(r"[\d\W]+", clean_cell(cell))}, key=lambda c: (-len(c), c))
    for cell in cells:
        match = re.search(rf"(?<!\w){re.escape(cell)}(?!\w)", question, re.I)
        if match:
            found.append(("entity", match.start(), match.end()))
    for match in _UNIT.finditer(question):
        found.append(("unit", match.start(), match.end()))
    kept: list[tuple[str, int, int]] = []
    for kind, start, end in found:
        if all(end <= s or start >= e for _, s, e in kept) and question[start:end].strip():
            kept.append((kind, start, end))
    return kept


def identify_needed_info(task: TableTask, seed: int = 0) -> NeededInfo | Refusal:
    """The rule-based identification: the cells holding a lookup value (``data.table_tasks.lookup_cells``);
    the needed column is the one with most such cells (ties: seeded), the needed row and cell one of its cells
    (seeded); the span the first of :func:`question_spans` of the preferred kind (period > entity > unit).
    Refuses (``no_answer_cell_or_span``) only when neither a cell nor a span is found."""
    rng = task_rng(seed, "identify", task.id)
    cells = lookup_cells(task.table, task.lookup_values)
    column = row = cell = None
    if cells:
        counts = Counter(c for _, c in cells)
        best = max(counts.values())
        column = rng.choice(sorted(c for c, n in counts.items() if n == best))
        cell = rng.choice([rc for rc in cells if rc[1] == column])
        row = cell[0]
    spans = question_spans(task)
    span = span_kind = None
    for kind in ("period", "entity", "unit"):
        of_kind = [s for s in spans if s[0] == kind]
        if of_kind:
            chosen = of_kind[0] if len(of_kind) == 1 else rng.choice(of_kind)
            span, span_kind = task.question[chosen[1]:chosen[2]], kind
            break
    if cell is None and span is None:
        return Refusal("identify", "no_answer_cell_or_span")
    return NeededInfo(column, row, cell, span, span_kind)


def _verify_table(task: TableTask, strategy: str, table: tuple[tuple[str, ...], ...]) -> Refusal | None:
    """Refusal unless the answer can no longer be looked up (module docstring)."""
    left = values_present(table, task.paragraphs, task.lookup_values)
    arithmetic = task.example.meta.get("answer_type") == "arithmetic"
    if (arithmetic and len(left) == len(set(task.lookup_values))) or (not arithmetic and left):
        return Refusal(strategy, "answer_still_derivable")
    return None


def _table_precheck(task: TableTask, strategy: str, needed: NeededInfo) -> Refusal | None:
    if task.example.meta.get("answer_from") == "text":
        return Refusal(strategy, "answer_from_text")
    if needed.cell is None:
        return Refusal(strategy, "answer_not_in_table")
    if task.example.task == "wtq" and _AGGREGATE.match(task.question):
        return Refusal(strategy, "aggregate_question")
    return None


def ablate_column(task: TableTask, needed: NeededInfo) -> Ablated | Refusal:
    """Drop column ``needed.column`` from every row."""
    refusal = _table_precheck(task, "column", needed)
    if refusal:
        return refusal
    c = needed.column
    if len(task.table[0]) < 2:
        return Refusal("column", "single_column")
    table = tuple(row[:c] + row[c + 1:] for row in task.table)
    refusal = _verify_table(task, "column", table)
    if refusal:
        return refusal
    header = _header(task.table, c)
    values = [[_row_label(task.table, r) if c != 0 else f"row {r}", clean_cell(row[c])]
              for r, row in enumerate(task.table) if r >= 1 and c < len(row)]
    text = f"The column '{header}' holds: " + "; ".join(f"{label}: {value}" for label, value in values) + "."
    removed = Removed("column", "column", column=c, header=clean_cell(task.table[0][c]), values=values, user_text=text)
    return Ablated(task, "column", table, task.paragraphs, task.question, removed)


def ablate_row(task: TableTask, needed: NeededInfo) -> Ablated | Refusal:
    """Drop data row ``needed.row``."""
    refusal = _table_precheck(task, "row", needed)
    if refusal:
        return refusal
    r = needed.row
    if len(task.table) < 3:
        return Refusal("row", "single_row")
    table = task.table[:r] + task.table[r + 1:]
    refusal = _verify_table(task, "row", table)
    if refusal:
        return refusal
    values = [[_header(task.table, c), clean_cell(cell)] for c, cell in enumerate(task.table[r])]
    text = "The missing row reads: " + "; ".join(f"{h}: {v}" for h, v in values) + "."
    removed = Removed("row", "row", row=r, header=_row_label(task.table, r), values=values, user_text=text)
    return Ablated(task, "row", table, task.paragraphs, task.question, removed)


def ablate_value(task: TableTask, needed: NeededInfo, rng: random.Random, mode: str = "remove") -> Ablated | Refusal:
    """Blank (``remove``) or replace (``alter``) the needed cell."""
    refusal = _table_precheck(task, "value", needed)
    if refusal:
        return refusal
    r, c = needed.cell
    old = task.table[r][c]
    if mode == "remove":
        new = ""
    elif mode == "alter":
        lookup = {normalize_value(v) for v in task.lookup_values}
        pool = sorted({row[c] for row in task.table[1:] if c < len(row) and row[c].strip()
                       and normalize_value(row[c]) not in lookup and normalize_value(row[c]) != normalize_value(old)})
        if not pool:
            return Refusal("value", "no_alternative_value")
        new = rng.choice(pool)
    else:
        raise ConfigError(f"ablation.value_mode={mode!r}; choose remove or alter")
    row = task.table[r][:c] + (new,) + task.table[r][c + 1:]
    table = task.table[:r] + (row,) + task.table[r + 1:]
    refusal = _verify_table(task, "value", table)
    if refusal:
        return refusal
    label, header = _row_label(task.table, r), _header(task.table, c)
    text = f"The value in row '{label}', column '{header}' is {clean_cell(old)}."
    removed = Removed("value", "cell", column=c, row=r, header=header, values=[[f"{label} / {header}", clean_cell(old)]],
                      new_value=new if mode == "alter" else None, user_text=text)
    return Ablated(task, "value", table, task.paragraphs, task.question, removed)


def ablate_question(task: TableTask, needed: NeededInfo) -> Ablated | Refusal:
    """Cut ``needed.span`` from the question (rule mode; reversible at ``position``)."""
    if not needed.span:
        return Refusal("question", "no_removable_span")
    start = task.question.find(needed.span)
    question = task.question[:start] + task.question[start + len(needed.span):]
    if not question.strip() or len(question.split()) < 3:
        return Refusal("question", "too_short_after_cut")
    spoken = needed.span.strip()
    removed = Removed("question", needed.span_kind or "span", span=needed.span, position=start,
                      user_text=f"I mean {spoken}." if needed.span_kind != "unit" else f"I want it {spoken}.")
    return Ablated(task, "question", task.table, task.paragraphs, question, removed)


def accept_rewrite(task: TableTask, needed: NeededInfo, rewrite: str) -> Ablated | Refusal:
    """The teacher's underspecified question (``question_mode=teacher``), kept when it is a non-empty question
    that differs from the original and no longer contains the needed span (case-insensitive)."""
    text = clean_cell(rewrite.strip().splitlines()[0] if rewrite.strip() else "").strip('"')
    if not needed.span:
        return Refusal("question", "no_removable_span")
    if not text or text == task.question or needed.span.strip().lower() in text.lower() or len(text.split()) < 3:
        return Refusal("question", "teacher_rewrite_rejected")
    spoken = needed.span.strip()
    removed = Removed("question", needed.span_kind or "span", span=needed.span, position=None,
                      user_text=f"I mean {spoken}." if needed.span_kind != "unit" else f"I want it {spoken}.")
    return Ablated(task, "question", task.table, task.paragraphs, text, removed)


def ablate(task: TableTask, strategy: str, needed: NeededInfo, seed: int = 0,
           value_mode: str = "remove") -> Ablated | Refusal:
    """Apply ``strategy`` (rule mode for ``question``) to ``task``."""
    if strategy == "column":
        return ablate_column(task, needed)
    if strategy == "row":
        return ablate_row(task, needed)
    if strategy == "value":
        return ablate_value(task, needed, task_rng(seed, strategy, task.id), value_mode)
    if strategy == "question":
        return ablate_question(task, needed)
    raise ConfigError(f"unknown ablation strategy {strategy!r}; choose from {list(STRATEGIES)}")


def ablated_example(ablated: Ablated, max_context_chars: int | None = None) -> Example:
    """The ablated task as an ``answer``-action Example of the source task (same goal and scorer meta), with
    ``meta["ts"]`` = ``{strategy, removed, source_id, original_question}`` and the id ``<source id>:<strategy>``."""
    source = ablated.task.example
    context = linearize_table_and_text(ablated.table, ablated.paragraphs, max_context_chars)
    meta = {**source.meta, "ts": {"strategy": ablated.strategy, "removed": ablated.removed.to_dict(),
                                  "source_id": source.id, "original_question": ablated.task.question}}
    return replace(source, id=f"{source.id}:{ablated.strategy}", context=context,
                   history=[Turn("user", ablated.question)], meta=meta)
