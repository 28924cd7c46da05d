"""PACIFIC (Deng et al., 2022; github dengyang17/PACIFIC) native JSON -> Examples.

A PACIFIC file is a list of dialogues ``{table: {uid, table: [[cell, ...], ...]}, paragraphs: [{uid,
order, text}], questions: [turn, ...]}``; each turn has ``question, answer, answer_type (span |
multi-span | arithmetic | count | question), answer_from, scale, derivation, req_clari,
original_question, ...``. A ``req_clari`` turn holds the clarifying question in ``answer``; the next
turn's ``question`` is the user's reply and its ``answer`` answers the clarified request.

Decision points. EVERY turn of a dialogue is one Example (ACT's turn state t_i; Alg. 1 iterates
"for conversation turn t_i in D"), including the turn right after a clarification: its history ends
with the user's reply and its gold action is ``answer`` (ACT's Table A19 labels that turn "The user's
last question was unambiguous. The Assistant directly answers the question."; ACT's 1,923 training
examples from 250 conversations, 7.7 per conversation, also count every turn). So the real
validation file gives 1,982 Examples, 320 of them ``clarify``. Such a turn has
``meta["after_clarification"] = True``.

Per turn i of a dialogue:

- ``history``: for every earlier turn, the user's ``question`` then the assistant's gold reply
  (rendered answer, or the clarifying question), then turn i's ``question``.
- ``req_clari`` turn: action ``clarify``, response = the clarifying question; the resolving turn is
  the first later turn that is not ``req_clari`` (always the next one in the real data);
  clarification = (reply = the next turn's ``question``, answer = the resolving turn's rendered
  answer) and goal = [that answer].
- other turns: action ``answer``, response = goal[0] = the rendered answer.
- ``context``: :func:`~clarifylab.data.loaders.linearize.linearize_table_and_text` of the table and
  the paragraphs (sorted by ``order``), optionally bounded by ``max_context_chars``.
- ``meta``: conversation_id (= dialogue_id = the table uid), dialogue_index, turn (1-based), the
  turn's uid/order/original_question/answer_type/answer_from/scale/derivation/follow_up/
  req_comparison/rel_paragraphs, the raw ``answer`` (list for spans, number for arithmetic),
  ``goal_answer``/``goal_scale``/``goal_answer_type``/``goal_derivation`` (of the resolving turn for
  a clarify Example, of the turn itself otherwise: what a DROP/TAT-QA scorer needs), and for clarify
  Examples ``clarified_question`` (the resolving turn's fully specified ``original_question``).

Answer rendering (:func:`render_answer`), following the assistant turns shown in ACT's App. E
(Tables A17-A19: ``0.6/5.1 = 11.76``):

- ``arithmetic``: ``"<derivation> = <answer><scale>"``, e.g. ``"44.1-56.7 = -12.6 million"``,
  ``"(44.1-56.7)/56.7 = -22.22%"`` (percent is written ``%``, which also makes the equation true);
  the number is written without exponent or trailing ``.0`` (``42271.0`` -> ``42271``).
- ``span``: the span, with the scale appended when the span is a bare number (``"492"`` + million
  -> ``"492 million"``, ``"13.2"`` + percent -> ``"13.2%"``); a span that already states its scale
  or is not a number is kept as it is.
- ``multi-span``: each span rendered as above, joined by ``", "``.
- ``count``: the count only (its derivation, the ``##``-joined items, stays in meta).
- ``question``: the clarifying question.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from clarifylab.data.loaders.linearize import linearize_table_and_text
from clarifylab.data.loaders.native_json import RecordLocation, read_json_file
from clarifylab.data.schema import Action, Clarification, Example, Turn

TASK = "pacific"
ANSWER_TYPES = ("span", "multi-span", "arithmetic", "count", "question")
SCALES = ("", "thousand", "million", "billion", "percent")
EXPECTED_FILE = "pacific/validation.json"

# A span that is only a number: optional currency sign, sign or accounting parentheses, digits with
# thousands commas and decimals, optional percent sign ("$ 1,452.4", "(1.9)", "−298", "27.1%").
_NUMERIC_SPAN = re.compile(r"[$€£¥]?\s*[(\-−]?\s*[$€£¥]?\s*\d[\d,]*(?:\.\d+)?\s*\)?\s*%?")


@dataclass(frozen=True)
class TableQuestion:
    """One checked question of a TAT-QA-format record (a TAT-QA question, the common part of a PACIFIC turn);
    ``answer`` is as in the file."""

    uid: str
    order: int
    question: str
    answer: Any
    answer_type: str
    answer_from: str
    scale: str
    derivation: str
    req_comparison: bool
    rel_paragraphs: list[Any]

    @property
    def rendered(self) -> str:
        """The assistant's gold reply as text (:func:`render_answer`)."""
        return render_answer(self.answer, self.answer_type, self.derivation, self.scale)


@dataclass(frozen=True)
class PacificTurn(TableQuestion):
    """One turn of a PACIFIC dialogue: a :class:`TableQuestion` plus the conversational fields."""

    original_question: str
    req_clari: bool
    follow_up: bool


@dataclass(frozen=True)
class TableRecord:
    """One TAT-QA-format record (a PACIFIC dialogue, a TAT-QA context): its table uid, position in the file,
    table, paragraphs sorted by ``order``, and checked questions (PACIFIC turns)."""

    uid: str
    index: int
    table: list[list[str]]
    paragraphs: list[str]
    questions: list[Any]


def format_number(value: int | float) -> str:
    """A number in plain positional notation without a trailing ``.0`` (``42271.0`` -> ``"42271"``,
    ``11.76`` -> ``"11.76"``, ``1e-05`` -> ``"0.00001"``)."""
    text = format(Decimal(repr(value)).normalize(), "f")
    return "0" if text == "-0" else text


def _with_scale(span: str, scale: str) -> str:
    """``span`` with its scale word appended when it is a bare number that does not state it."""
    span = span.strip()
    if not scale or not _NUMERIC_SPAN.fullmatch(span):
        return span
    if scale == "percent":
        return span if span.endswith("%") else f"{span}%"
    return f"{span} {scale}"


def render_answer(answer: Any, answer_type: str, derivation: str = "", scale: str = "") -> str:
    """A PACIFIC answer as the assistant's reply text (rules in the module docstring).

    Args:
        answer: the raw ``answer`` field: list of strings (span, multi-span, question), a number
            (arithmetic) or a string/number (count).
        answer_type: one of :data:`ANSWER_TYPES`.
        derivation: the raw ``derivation`` field (arithmetic expression; ignored for other types).
        scale: one of :data:`SCALES`.

    Raises:
        ValueError: unknown ``answer_type`` or an answer of the wrong shape for it.
    """
    if answer_type in ("span", "multi-span", "question"):
        if not isinstance(answer, list) or not answer or not all(isinstance(s, str) for s in answer):
            raise ValueError(f"a {answer_type} answer must be a non-empty list of strings, got {answer!r}")
        if answer_type == "question":
            return answer[0].strip()
        return ", ".join(_with_scale(span, scale) for span in answer)
    if answer_type == "arithmetic":
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            raise ValueError(f"an arithmetic answer must be a number, got {answer!r}")
        result = format_number(answer) + ("%" if scale == "percent" else f" {scale}" if scale else "")
        return f"{derivation.strip()} = {result}" if derivation.strip() else result
    if answer_type == "count":
        if isinstance(answer, bool) or not isinstance(answer, (str, int)):
            raise ValueError(f"a count answer must be a string or an integer, got {answer!r}")
        return str(answer).strip()
    raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {ANSWER_TYPES}")


def read_question_fields(raw: Any, number: int, location: RecordLocation, noun: str,
                         answer_types: tuple[str, ...]) -> tuple[dict[str, Any], RecordLocation]:
    """The checked :class:`TableQuestion` fields of ``questions[number]`` of a record, and the location that
    names it (``<noun> <number + 1> (uid <uid>)``) for further fields (shared with the TAT-QA loader)."""
    at = f"questions[{number}]"
    if not isinstance(raw, dict):
        raise location.error(at, f"must be an object, got {type(raw).__name__}")
    location = RecordLocation(location.path, f"{location.record}, {noun} {number + 1} (uid {raw.get('uid')})")
    answer_type = location.get(raw, "answer_type", f"{at}.answer_type", str)
    if answer_type not in answer_types:
        raise location.error(f"{at}.answer_type", f"is {answer_type!r}; expected one of {list(answer_types)}")
    scale = location.get(raw, "scale", f"{at}.scale", str)
    if scale not in SCALES:
        raise location.error(f"{at}.scale", f"is {scale!r}; expected one of {list(SCALES)}")
    fields = {
        "order": location.get(raw, "order", f"{at}.order", int),
        "question": location.text(raw, "question", f"{at}.question"),
        "answer": location.get(raw, "answer", f"{at}.answer", list, int, float, str),
        "answer_type": answer_type,
        "answer_from": location.get(raw, "answer_from", f"{at}.answer_from", str, optional=True) or "",
        "scale": scale,
        "derivation": location.get(raw, "derivation", f"{at}.derivation", str, optional=True) or "",
        "req_comparison": bool(location.get(raw, "req_comparison", f"{at}.req_comparison", bool, optional=True)),
        "rel_paragraphs": list(location.get(raw, "rel_paragraphs", f"{at}.rel_paragraphs", list, optional=True)
                               or []),
    }
    return fields, location


def _read_turn(turn: Any, number: int, location: RecordLocation) -> PacificTurn:
    """A checked :class:`PacificTurn` from ``questions[number]`` of a dialogue."""
    at = f"questions[{number}]"
    fields, location = read_question_fields(turn, number, location, "turn", ANSWER_TYPES)
    req_clari = location.get(turn, "req_clari", f"{at}.req_clari", bool)
    if req_clari != (fields["answer_type"] == "question"):
        raise location.error(f"{at}.req_clari", f"is {str(req_clari).lower()} but answer_type is "
                                                f"{fields['answer_type']!r} (a clarifying turn has answer_type "
                                                f"'question')")
    original = location.get(turn, "original_question", f"{at}.original_question", str, optional=True)
    parsed = PacificTurn(
        uid=location.get(turn, "uid", f"{at}.uid", str), **fields,
        original_question=(original or fields["question"]).strip(),
        req_clari=req_clari,
        follow_up=bool(location.get(turn, "follow_up", f"{at}.follow_up", bool, optional=True)),
    )
    check_renders(parsed, location, at)
    return parsed


def check_renders(parsed: Any, location: RecordLocation, at: str) -> None:
    """Raise a :class:`DataFormatError` naming ``<at>.answer`` when a parsed turn's ``rendered`` answer is
    invalid or empty (shared with the TAT-QA loader)."""
    try:
        rendered = parsed.rendered
    except ValueError as error:
        raise location.error(f"{at}.answer", f"is invalid: {error}") from error
    if not rendered:
        raise location.error(f"{at}.answer", "renders to an empty reply")


@dataclass(frozen=True)
class Grounding:
    """The table and text of a TAT-QA-format record (a PACIFIC dialogue or a TAT-QA context)."""

    table_uid: str
    rows: list[list[str]]
    paragraphs: list[str]
    questions: list[Any]
    location: RecordLocation


def read_grounding(record: Any, index: int, path: Path, noun: str) -> Grounding:
    """The checked table uid, table rows, paragraphs (sorted by ``order``) and non-empty raw ``questions`` of the
    ``index``-th record; ``location`` names it as ``<noun> <index> (table uid <uid>)`` in errors."""
    location = RecordLocation(path, f"{noun} {index}")
    if not isinstance(record, dict):
        raise location.error("(record)", f"must be an object, got {type(record).__name__}")
    table = location.get(record, "table", "table", dict)
    table_uid = location.text(table, "uid", "table.uid")
    location = RecordLocation(path, f"{noun} {index} (table uid {table_uid})")
    rows = location.get(table, "table", "table.table", list)
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not all(isinstance(cell, str) for cell in row):
            raise location.error(f"table.table[{r}]", f"must be a list of strings, got {str(row)[:80]}")
    paragraphs = []
    for p, paragraph in enumerate(location.get(record, "paragraphs", "paragraphs", list)):
        order = location.get(paragraph, "order", f"paragraphs[{p}].order", int)
        paragraphs.append((order, location.get(paragraph, "text", f"paragraphs[{p}].text", str)))
    paragraphs.sort(key=lambda pair: pair[0])
    questions = location.get(record, "questions", "questions", list)
    if not questions:
        raise location.error("questions", f"is empty; a {noun} needs at least one question")
    return Grounding(table_uid, rows, [text for _, text in paragraphs], questions, location)


def _read_dialogue(record: Any, index: int, path: Path) -> TableRecord:
    """A checked dialogue (a :class:`TableRecord` of :class:`PacificTurn`) from the ``index``-th record of the file."""
    grounding = read_grounding(record, index, path, "dialogue")
    location = grounding.location
    turns = [_read_turn(turn, number, location) for number, turn in enumerate(grounding.questions)]
    if turns[-1].req_clari:
        raise location.error(f"questions[{len(turns) - 1}].req_clari",
                             "is true on the last turn: nothing answers the clarified request")
    return TableRecord(grounding.table_uid, index, grounding.rows, grounding.paragraphs, turns)


def read_pacific_dialogues(path: str | os.PathLike[str]) -> list[TableRecord]:
    """All dialogues of a PACIFIC file, checked, in file order.

    Raises:
        DataNotFoundError: the file is missing (names the path, ``dataset.path`` and ``paths.data_dir``).
        DataFormatError: the file or a record is malformed (names file, dialogue, turn and field).
    """
    path = Path(path)
    data = read_json_file(path, "PACIFIC", EXPECTED_FILE)
    if not isinstance(data, list):
        raise RecordLocation(path, "top level").error("(file)", f"must be a list of dialogues, got "
                                                                f"{type(data).__name__}")
    dialogues = [_read_dialogue(record, index, path) for index, record in enumerate(data)]
    seen: dict[str, int] = {}
    for dialogue in dialogues:
        if dialogue.uid in seen:
            raise RecordLocation(path, f"dialogue {dialogue.index}").error(
                "table.uid", f"{dialogue.uid!r} repeats dialogue {seen[dialogue.uid]}; "
                             "dialogue ids must be unique")
        seen[dialogue.uid] = dialogue.index
    return dialogues


def _turn_meta(turn: PacificTurn) -> dict[str, Any]:
    return {"uid": turn.uid, "order": turn.order, "original_question": turn.original_question,
            "answer": turn.answer, "answer_type": turn.answer_type, "answer_from": turn.answer_from,
            "scale": turn.scale, "derivation": turn.derivation, "follow_up": turn.follow_up,
            "req_comparison": turn.req_comparison, "rel_paragraphs": turn.rel_paragraphs}


def dialogue_examples(dialogue: TableRecord, max_context_chars: int | None = None) -> list[Example]:
    """One Example per turn of ``dialogue`` (rules in the module docstring)."""
    context = linearize_table_and_text(dialogue.table, dialogue.paragraphs, max_context_chars)
    full_length = len(linearize_table_and_text(dialogue.table, dialogue.paragraphs))
    examples: list[Example] = []
    history: list[Turn] = []
    for position, turn in enumerate(dialogue.questions):
        history.append(Turn("user", turn.question))
        resolving = next(later for later in dialogue.questions[position:] if not later.req_clari)
        meta = {"conversation_id": dialogue.uid, "dialogue_id": dialogue.uid,
                "dialogue_index": dialogue.index, "turn": position + 1,
                "after_clarification": position > 0 and dialogue.questions[position - 1].req_clari,
                "context_truncated": len(context) < full_length, **_turn_meta(turn),
                "goal_answer": resolving.answer, "goal_scale": resolving.scale,
                "goal_answer_type": resolving.answer_type, "goal_derivation": resolving.derivation}
        common = {"id": f"{dialogue.uid}-t{position + 1:02d}", "task": TASK, "context": context,
                  "history": list(history), "response": turn.rendered, "goal": [resolving.rendered]}
        if turn.req_clari:
            reply = dialogue.questions[position + 1].question
            meta["clarified_question"] = resolving.original_question
            examples.append(Example(**common, action=Action.CLARIFY, meta=meta,
                                    clarifications=[Clarification(reply=reply, answer=resolving.rendered)]))
        else:
            examples.append(Example(**common, action=Action.ANSWER, meta=meta))
        history.append(Turn("assistant", turn.rendered))
    return examples


def load_pacific(path: str | os.PathLike[str], max_context_chars: int | None = None) -> list[Example]:
    """Every decision point of every dialogue of a PACIFIC file, in file order.

    Args:
        path: a PACIFIC JSON file (e.g. ``<data_dir>/pacific/validation.json``).
        max_context_chars: bound on ``Example.context`` (``None``: whole table and text).

    Raises:
        DataNotFoundError, DataFormatError: see :func:`read_pacific_dialogues`.
    """
    return [example for dialogue in read_pacific_dialogues(path)
            for example in dialogue_examples(dialogue, max_context_chars)]
