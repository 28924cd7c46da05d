"""TAT-QA (Zhu et al., ACL 2021; github NExTplusplus/TAT-QA) native JSON -> Examples.

A TAT-QA file (``tatqa_dataset_{train,dev}.json``) is a list of contexts ``{table: {uid, table:
[[cell, ...], ...]}, paragraphs: [{uid, order, text}], questions: [question, ...]}``; each question
has ``uid, order, question, answer, derivation, answer_type (span | multi-span | arithmetic | count),
answer_from (table | text | table-text), rel_paragraphs, req_comparison, scale``. PACIFIC is built on
these contexts (every table of PACIFIC's validation file is a TAT-QA dev table), without the
clarification fields. The upstream test file has no answers and cannot be loaded here. Contexts and
questions are read into the PACIFIC loader's :class:`~clarifylab.data.loaders.pacific.TableRecord` and
:class:`~clarifylab.data.loaders.pacific.TableQuestion` (a PACIFIC turn is a TableQuestion plus its
conversational fields), with the same field reader.

Every question is fully specified, so each one is one Example with action ``answer``:

- ``id``: the question ``uid`` (unique in the file); ``history``: ``[Turn("user", question)]``.
- ``response`` = ``goal[0]``: the answer rendered exactly as PACIFIC's
  (:func:`clarifylab.data.loaders.pacific.render_answer`): ``"<derivation> = <answer><scale>"`` for
  arithmetic (``"44.1-56.7 = -12.6 million"``, ``"(44.1-56.7)/56.7 = -22.22%"``), spans with a bare
  number get their scale (``"$1,496.5 million"``), multi-span joined by ``", "``, count = the number.
- ``context``: :func:`~clarifylab.data.loaders.linearize.linearize_table_and_text` of the table and
  the paragraphs (sorted by ``order``), optionally bounded by ``max_context_chars``.
- ``meta``: conversation_id (= table_uid: questions about one table stay in one split),
  context_index, question_index (0-based position in ``questions``), the question's uid, order,
  raw ``answer`` (list of spans, a number, or the count string), answer_type, answer_from, scale,
  derivation, req_comparison, rel_paragraphs, context_truncated, and the PACIFIC loader's scorer
  keys ``goal_answer``/``goal_scale``/``goal_answer_type``/``goal_derivation`` (here the question's
  own), so the TAT-QA/DROP scorer in ``metrics.task_heuristics`` reads both datasets alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clarifylab.data.loaders.linearize import linearize_table_and_text
from clarifylab.data.loaders.native_json import RecordLocation, read_json_file
from clarifylab.data.loaders.pacific import (
    TableQuestion,
    TableRecord,
    check_renders,
    read_grounding,
    read_question_fields,
)
from clarifylab.data.schema import Action, Example, Turn

TASK = "tatqa"
ANSWER_TYPES = ("span", "multi-span", "arithmetic", "count")
EXPECTED_FILE = "tatqa/tatqa_dataset_dev.json"


def _read_question(question: Any, number: int, location: RecordLocation) -> TableQuestion:
    """A checked :class:`~clarifylab.data.loaders.pacific.TableQuestion` from ``questions[number]`` of a context."""
    at = f"questions[{number}]"
    fields, location = read_question_fields(question, number, location, "question", ANSWER_TYPES)
    parsed = TableQuestion(uid=location.text(question, "uid", f"{at}.uid"), **fields)
    check_renders(parsed, location, at)
    return parsed


def _read_context(record: Any, index: int, path: Path) -> TableRecord:
    """A checked context (a :class:`~clarifylab.data.loaders.pacific.TableRecord`) from the ``index``-th record."""
    grounding = read_grounding(record, index, path, "context")
    parsed = [_read_question(question, number, grounding.location)
              for number, question in enumerate(grounding.questions)]
    return TableRecord(grounding.table_uid, index, grounding.rows, grounding.paragraphs, parsed)


def read_tatqa_contexts(path: str | os.PathLike[str]) -> list[TableRecord]:
    """All contexts of a TAT-QA file, checked, in file order.

    Raises:
        DataNotFoundError: the file is missing (names the path, ``dataset.path`` and ``paths.data_dir``).
        DataFormatError: the file or a record is malformed, or a table uid / question uid repeats
            (names file, context, question and field).
    """
    path = Path(path)
    data = read_json_file(path, "TAT-QA", EXPECTED_FILE)
    if not isinstance(data, list):
        raise RecordLocation(path, "top level").error("(file)", f"must be a list of contexts, got "
                                                                f"{type(data).__name__}")
    contexts = [_read_context(record, index, path) for index, record in enumerate(data)]
    tables: dict[str, int] = {}
    questions: dict[str, int] = {}
    for context in contexts:
        location = RecordLocation(path, f"context {context.index} (table uid {context.uid})")
        if context.uid in tables:
            raise location.error("table.uid", f"{context.uid!r} repeats context {tables[context.uid]}; "
                                              "table uids must be unique")
        tables[context.uid] = context.index
        for number, question in enumerate(context.questions):
            if question.uid in questions:
                raise location.error(f"questions[{number}].uid", f"{question.uid!r} repeats a question of context "
                                                                  f"{questions[question.uid]}; uids must be unique")
            questions[question.uid] = context.index
    return contexts


def context_examples(context: TableRecord, max_context_chars: int | None = None) -> list[Example]:
    """One ``answer`` Example per question of ``context`` (rules in the module docstring)."""
    text = linearize_table_and_text(context.table, context.paragraphs, max_context_chars)
    truncated = len(text) < len(linearize_table_and_text(context.table, context.paragraphs))
    examples = []
    for position, question in enumerate(context.questions):
        rendered = question.rendered
        meta = {"conversation_id": context.uid, "table_uid": context.uid,
                "context_index": context.index, "question_index": position, "uid": question.uid,
                "order": question.order, "answer": question.answer, "answer_type": question.answer_type,
                "answer_from": question.answer_from, "scale": question.scale, "derivation": question.derivation,
                "req_comparison": question.req_comparison, "rel_paragraphs": question.rel_paragraphs,
                "context_truncated": truncated, "goal_answer": question.answer, "goal_scale": question.scale,
                "goal_answer_type": question.answer_type, "goal_derivation": question.derivation}
        examples.append(Example(id=question.uid, task=TASK, context=text, history=[Turn("user", question.question)],
                                response=rendered, action=Action.ANSWER, goal=[rendered], meta=meta))
    return examples


def load_tatqa(path: str | os.PathLike[str], max_context_chars: int | None = None) -> list[Example]:
    """Every question of a TAT-QA file as an ``answer`` Example, in file order.

    Args:
        path: a TAT-QA JSON file (e.g. ``<data_dir>/tatqa/tatqa_dataset_dev.json``).
        max_context_chars: bound on ``Example.context`` (``None``: whole table and text).

    Raises:
        DataNotFoundError, DataFormatError: see :func:`read_tatqa_contexts`.
    """
    return [example for context in read_tatqa_contexts(path)
            for example in context_examples(context, max_context_chars)]
