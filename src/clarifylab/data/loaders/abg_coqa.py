"""Abg-CoQA (Guo et al., 2021; github MeiqiGuo/AKBC2021-Abg-CoQA) native JSON -> Examples.

A file is ``{"version": ..., "data": [record, ...]}``; a record has ``id`` (``<story id>|<turn>|<n>``),
``story``, ``history_turns[{turn_id, question, answer, rationale}]``, ``target_turn{turn_id, question,
answer, rationale, ...}``, ``ambiguity`` (``ambiguous`` | ``non_ambiguous``), ``clarification_turn``
(``{}`` or ``{question, answers[{clr_ans, org_ans, org_ans_2, org_ans_3}]}``, one answer per
interpretation), ``source`` and, for ambiguous records, a second annotator's ``clarification_turn_2``.

Each record is one Example (ACT evaluates each ambiguous request against every interpretation):

- ``context`` = the story (optionally bounded by ``max_context_chars``); ``history`` = each history
  turn's question (user) and answer (assistant), then the target question (user).
- ``ambiguous``: action ``clarify``, response = ``clarification_turn.question``, one
  :class:`Clarification` per ``clarification_turn.answers[k]`` (reply = ``clr_ans``, answer =
  ``org_ans``), goal = every ``org_ans`` in order.
- ``non_ambiguous``: action ``answer``, response = goal[0] = ``target_turn.answer``.
- ``meta``: conversation_id (records of one story come from one CoQA conversation, and CoQA reuses a
  passage under several story ids, so it is the smallest story id whose story has the same text,
  :func:`~clarifylab.data.splits.merge_by_content`: splits and the 50/100/250-conversation subsets group
  records by passage content, and no passage is in two splits), story_id (the id's story part),
  passage_key (:func:`~clarifylab.data.splits.passage_key` of the whole story), record_id, turn_id, source,
  ambiguity, rationale, history_turn_ids, target_answer (the CoQA answer of the target turn, also for
  ambiguous records), and for ambiguous records ``alternative_answers`` (per interpretation, the
  other annotators' ``org_ans_2``/``org_ans_3``) and ``clarification_turn_2`` as in the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clarifylab.data.loaders.linearize import truncate_text
from clarifylab.data.loaders.native_json import RecordLocation, read_json_file
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.data.splits import merge_by_content, passage_key

TASK = "abg_coqa"
AMBIGUITY_LABELS = ("ambiguous", "non_ambiguous")
EXPECTED_FILE = "abg-coqa/coqa_abg_val.json"


def story_id(record_id: str) -> str:
    """The story (CoQA conversation) a record id belongs to: the part before the first ``|``."""
    return record_id.split("|", 1)[0]


def _clarifications(record: dict[str, Any], location: RecordLocation) -> tuple[str, list[Clarification],
                                                                                  list[list[str]]]:
    """(clarifying question, one Clarification per interpretation, alternative answers per interpretation)."""
    turn = location.get(record, "clarification_turn", "clarification_turn", dict)
    question = location.text(turn, "question", "clarification_turn.question")
    answers = location.get(turn, "answers", "clarification_turn.answers", list)
    if not answers:
        raise location.error("clarification_turn.answers", "is empty; an ambiguous record needs at least one "
                                                           "interpretation")
    clarifications, alternatives = [], []
    for k, answer in enumerate(answers):
        at = f"clarification_turn.answers[{k}]"
        clarifications.append(Clarification(reply=location.text(answer, "clr_ans", f"{at}.clr_ans"),
                                            answer=location.text(answer, "org_ans", f"{at}.org_ans")))
        alternatives.append([location.get(answer, key, f"{at}.{key}", str).strip()
                             for key in ("org_ans_2", "org_ans_3") if key in answer])
    return question, clarifications, alternatives


def record_example(record: Any, index: int, path: Path, max_context_chars: int | None = None) -> Example:
    """The Example of the ``index``-th record of the file at ``path`` (rules in the module docstring).

    Raises:
        DataFormatError: a field is missing, of the wrong type or empty (names file, record, field).
    """
    location = RecordLocation(path, f"record {index}")
    if not isinstance(record, dict):
        raise location.error("(record)", f"must be an object, got {type(record).__name__}")
    record_id = location.text(record, "id", "id")
    location = RecordLocation(path, f"record {index} (id {record_id})")
    story = location.text(record, "story", "story")
    history: list[Turn] = []
    history_ids = []
    for h, turn in enumerate(location.get(record, "history_turns", "history_turns", list)):
        history.append(Turn("user", location.text(turn, "question", f"history_turns[{h}].question")))
        history.append(Turn("assistant", location.text(turn, "answer", f"history_turns[{h}].answer",
                                                       allow_empty=True)))
        history_ids.append(location.get(turn, "turn_id", f"history_turns[{h}].turn_id", int, optional=True))
    target = location.get(record, "target_turn", "target_turn", dict)
    history.append(Turn("user", location.text(target, "question", "target_turn.question")))
    target_answer = location.text(target, "answer", "target_turn.answer")
    ambiguity = location.get(record, "ambiguity", "ambiguity", str)
    if ambiguity not in AMBIGUITY_LABELS:
        raise location.error("ambiguity", f"is {ambiguity!r}; expected one of {list(AMBIGUITY_LABELS)}")
    meta: dict[str, Any] = {
        "conversation_id": story_id(record_id), "story_id": story_id(record_id), "passage_key": passage_key(story),
        "record_id": record_id,
        "turn_id": location.get(target, "turn_id", "target_turn.turn_id", int, optional=True),
        "source": location.get(record, "source", "source", str, optional=True),
        "ambiguity": ambiguity, "rationale": location.get(target, "rationale", "target_turn.rationale", str,
                                                          optional=True),
        "history_turn_ids": history_ids, "target_answer": target_answer,
        "context_truncated": max_context_chars is not None and len(story) > max_context_chars,
    }
    common = {"id": record_id, "task": TASK, "context": truncate_text(story, max_context_chars),
              "history": history}
    if ambiguity == "non_ambiguous":
        return Example(**common, response=target_answer, action=Action.ANSWER, goal=[target_answer], meta=meta)
    question, clarifications, alternatives = _clarifications(record, location)
    meta["alternative_answers"] = alternatives
    if "clarification_turn_2" in record:
        meta["clarification_turn_2"] = location.get(record, "clarification_turn_2", "clarification_turn_2", dict)
    return Example(**common, response=question, action=Action.CLARIFY, goal=[c.answer for c in clarifications],
                   clarifications=clarifications, meta=meta)


def load_abg_coqa(path: str | os.PathLike[str], max_context_chars: int | None = None) -> list[Example]:
    """One Example per record of an Abg-CoQA file, in file order; stories with the same passage share one
    ``meta["conversation_id"]`` (module docstring).

    Raises:
        DataNotFoundError: the file is missing (names the path, ``dataset.path`` and ``paths.data_dir``).
        DataFormatError: the file or a record is malformed, or a record id repeats (names file, record
            and field).
    """
    path = Path(path)
    data = read_json_file(path, "Abg-CoQA", EXPECTED_FILE)
    top = RecordLocation(path, "top level")
    if not isinstance(data, dict):
        raise top.error("(file)", f"must be an object with a 'data' list, got {type(data).__name__}")
    records = top.get(data, "data", "data", list)
    examples = [record_example(record, index, path, max_context_chars) for index, record in enumerate(records)]
    seen: dict[str, int] = {}
    for index, example in enumerate(examples):
        if example.id in seen:
            raise RecordLocation(path, f"record {index}").error("id", f"{example.id!r} repeats record "
                                                                      f"{seen[example.id]}; ids must be unique")
        seen[example.id] = index
    merged = merge_by_content((e.meta["story_id"], e.meta["passage_key"]) for e in examples)
    for example in examples:
        example.meta["conversation_id"] = merged[example.meta["story_id"]]
    return examples
