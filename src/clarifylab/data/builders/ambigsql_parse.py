"""Reading the AmbigSQL teacher's replies (:mod:`ambigsql_prompts`) tolerantly, and judging them.

``two_step`` replies are one line each (:func:`parse_line`): the first non-empty line, without a leading
label (``Ambiguous request:``, ``**Clarifying question:**``) and surrounding quotes; later lines (small
models go on with another turn) are ignored.

``joint`` replies are two labelled lines (:func:`parse_rewrite`). Accepted variations: any case, markdown
emphasis or bullets around a label (``**Ambiguous request:**``, ``1. Clarifying question -``), the value on
the next line when the label line holds only the label, quotes around a value, extra text before, between
or after the two lines (the first occurrence of each label counts). When only the question is labelled and
exactly one non-empty line precedes it, that line is taken as the request.

Drop reasons, checked in this order (:data:`DROP_REASONS`):

- ``unparseable`` (joint only): no clarifying-question label, or no request found;
- ``empty``: a request or question that is empty;
- ``identical_to_original``: the request equals the original after normalising case, punctuation and spaces;
- ``nothing_left_out``: every content word of the original (:data:`FUNCTION_WORDS` aside) is still in the
  request, so it cannot be missing anything the SQL needs;
- ``question_repeats_request``: the question equals the ambiguous or the original request (normalised);
- ``not_a_question``: the question has no ``?`` (only with ``require_question_mark``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DROP_REASONS = ("unparseable", "empty", "identical_to_original", "nothing_left_out", "question_repeats_request",
                "not_a_question")
FUNCTION_WORDS = frozenset(
    "a an the of to in on at for by with from and or is are was were be been do does did what which who whom whose "
    "when where how me my i we us our you your please show list give return find tell get display".split())
"""Words whose absence does not make a request ambiguous ("What is the X?" vs "the X")."""

_DECORATION = r"[\s*_#>\-\d.()\[\]]*"
_REQUEST = re.compile(rf"^{_DECORATION}ambiguous\s+(?:user\s+)?request[\s*_]*[:\-]\s*(.*)$", re.IGNORECASE)
_QUESTION = re.compile(rf"^{_DECORATION}clarif\w*\s+question[\s*_]*[:\-]\s*(.*)$", re.IGNORECASE)
_ANY_LABEL = re.compile(rf"^{_DECORATION}(?:ambiguous\s+(?:user\s+)?request|clarif\w*\s+question|request|question)"
                        rf"[\s*_]*:\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`*_ "
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Rewrite:
    """A judged teacher output: the ambiguous ``request`` and clarifying ``question`` as parsed, and ``reason``
    (one of :data:`DROP_REASONS`) when dropped."""

    request: str | None
    question: str | None
    reason: str | None = None

    @property
    def kept(self) -> bool:
        """True when the output gave a usable ambiguous request and clarifying question."""
        return self.reason is None


def clean_value(text: str) -> str:
    """A field value without surrounding quotes/markdown and with whitespace runs collapsed."""
    return " ".join(text.split()).strip(_QUOTES).strip()


def parse_line(text: str) -> str:
    """The value of a one-line reply: its first non-empty line without a leading label, cleaned (``""`` when
    the reply is blank)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return clean_value(_ANY_LABEL.sub("", first, count=1))


def _labelled(lines: list[str], pattern: re.Pattern[str]) -> tuple[int, str] | None:
    """``(line index, value)`` of the first line matching ``pattern``; an empty value is taken from the next
    non-empty line unless that line carries a label itself."""
    for index, line in enumerate(lines):
        match = pattern.match(line)
        if not match:
            continue
        value = clean_value(match.group(1))
        if not value:
            following = next((other for other in lines[index + 1:] if other.strip()), "")
            if following and not (_REQUEST.match(following) or _QUESTION.match(following)):
                value = clean_value(following)
        return index, value
    return None


def parse_rewrite(text: str) -> tuple[str | None, str | None]:
    """``(ambiguous request, clarifying question)`` from a ``joint`` reply; ``None`` for a field not found,
    ``""`` for a label with no value (see the module docstring for what is tolerated)."""
    lines = text.splitlines()
    question = _labelled(lines, _QUESTION)
    request = _labelled(lines, _REQUEST)
    if request is None and question is not None:
        before = [line for line in lines[:question[0]] if line.strip()]
        if len(before) == 1:
            request = (0, clean_value(before[0]))
    return (request[1] if request else None), (question[1] if question else None)


def normalise(text: str) -> str:
    """Lower-case words and digits joined by single spaces (punctuation and spacing ignored)."""
    return " ".join(_WORDS.findall(text.lower()))


def content_words(text: str) -> set[str]:
    """The normalised words of ``text`` that are not :data:`FUNCTION_WORDS`."""
    return set(normalise(text).split()) - FUNCTION_WORDS


def judge_request(request: str, original: str) -> str | None:
    """Why an ambiguous request is unusable (``empty``, ``identical_to_original``, ``nothing_left_out``), or
    ``None``."""
    if not request:
        return "empty"
    if normalise(request) == normalise(original):
        return "identical_to_original"
    if content_words(original) <= set(normalise(request).split()):
        return "nothing_left_out"
    return None


def judge_question(question: str, request: str, original: str, require_question_mark: bool = True) -> str | None:
    """Why a clarifying question is unusable (``empty``, ``question_repeats_request``, ``not_a_question``), or
    ``None``."""
    if not question:
        return "empty"
    if normalise(question) in (normalise(request), normalise(original)):
        return "question_repeats_request"
    if require_question_mark and "?" not in question:
        return "not_a_question"
    return None


def judge_rewrite(text: str, original: str, require_question_mark: bool = True) -> Rewrite:
    """Parse a ``joint`` reply and keep it, or say why it is dropped (module docstring)."""
    request, question = parse_rewrite(text)
    if request is None or question is None:
        return Rewrite(request, question, "unparseable")
    reason = judge_request(request, original) or judge_question(question, request, original, require_question_mark)
    return Rewrite(request, question, reason)
