"""Whether a clarifying question targets the missing information (the teacher's judgement), and the parsing of
the teacher's identification.

``rule``: the question shares a content word with what was removed (the column header, the row label, the
cell's row label and header, or the question span) or names the kind of thing removed (``year``/``period``
for a period, ``unit``/``scale``/``million``... for a unit, ``column``/``row``/``value``/``cell``).
``teacher``: the teacher's reply to :func:`~clarifylab.methods.ts.prompts.judge_messages` starts with "yes".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from clarifylab.data.loaders.linearize import clean_cell

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("a an the of in on at to for by with from as and or is are was were be what which who whom "
                      "whose when where why how do does did you your i me my it its this that these those there "
                      "please can could would should will any some about".split())
KIND_WORDS = {"period": {"year", "years", "period", "when", "date", "fiscal"},
              "unit": {"unit", "units", "scale", "million", "millions", "thousand", "thousands", "percent",
                       "percentage"},
              "column": {"column"}, "row": {"row"}, "cell": {"value", "cell", "number", "amount"},
              "entity": set()}


def content_words(text: str) -> set[str]:
    """Lower-case words of ``text`` that are not :data:`STOPWORDS`."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def removed_keywords(removed: Mapping[str, Any]) -> set[str]:
    """The words a targeted clarifying question may use (module docstring)."""
    words = set(KIND_WORDS.get(str(removed.get("what")), set()))
    if removed.get("strategy") == "question":
        words |= content_words(str(removed.get("span") or ""))
    elif removed.get("strategy") == "row":
        words |= content_words(str(removed.get("header") or ""))
    else:
        words |= content_words(str(removed.get("header") or ""))
        if removed.get("what") == "cell":
            words |= content_words(str(removed["values"][0][0]))
    return words


def rule_targets(removed: Mapping[str, Any], question: str) -> bool:
    """Rule judge: ``question`` shares a word with :func:`removed_keywords`."""
    return bool(removed_keywords(removed) & content_words(question))


def parse_yes(reply: str) -> bool:
    """A teacher's yes/no reply: True when its first word is "yes"."""
    words = _WORD.findall(reply.lower())
    return bool(words) and words[0] == "yes"


def parse_column(reply: str, header: Sequence[str]) -> int | None:
    """The column a teacher's reply names: an exact (case-insensitive) header match, else the longest header
    contained in the reply; None when it names none."""
    text = clean_cell(reply).strip().strip("'\".").lower()
    names = [clean_cell(h).lower() for h in header]
    if text in names and text:
        return names.index(text)
    contained = [(len(n), i) for i, n in enumerate(names) if n and n in text]
    return max(contained)[1] if contained else None
