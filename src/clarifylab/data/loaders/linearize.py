"""Grounding data -> the plain-text ``Example.context`` a policy reads (shared by the table+text loaders).

A table becomes one line per row with cells separated by `` | `` (runs of whitespace inside a cell
collapse to one space; rows whose cells are all empty are dropped), e.g.::

    Table:
     | 2019 | 2018
    Total sales | $1,496.5 | $1,202.9

Paragraphs follow under ``Text:``, one per line. ``max_chars`` bounds the result: the tail is cut at a
word boundary and :data:`TRUNCATION_MARKER` is appended, so the table (which comes first) survives and
the end of the text goes first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TRUNCATION_MARKER = " [...]"
_WHITESPACE = re.compile(r"\s+")


def clean_cell(cell: str) -> str:
    """A cell with surrounding whitespace removed and inner whitespace runs collapsed to one space."""
    return _WHITESPACE.sub(" ", cell).strip()


def linearize_table(rows: Sequence[Sequence[str]]) -> str:
    """One line per non-empty row, cells joined by `` | `` (ragged rows are kept as they are)."""
    lines = []
    for row in rows:
        cells = [clean_cell(cell) for cell in row]
        if any(cells):
            lines.append(" | ".join(cells).strip())
    return "\n".join(lines)


def truncate_text(text: str, max_chars: int | None) -> str:
    """``text`` cut to at most ``max_chars`` characters (marker included), at a word boundary if one
    lies in the last half of the kept part; ``None`` keeps it whole.

    Raises:
        ValueError: ``max_chars`` leaves no room for the marker.
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    if max_chars <= 2 * len(TRUNCATION_MARKER):
        raise ValueError(f"max_chars={max_chars} is too small; use more than {2 * len(TRUNCATION_MARKER)}")
    keep = max_chars - len(TRUNCATION_MARKER)
    cut = text[:keep]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary >= keep // 2:
        cut = cut[:boundary]
    return cut.rstrip() + TRUNCATION_MARKER


def linearize_table_and_text(rows: Sequence[Sequence[str]], paragraphs: Sequence[str],
                             max_chars: int | None = None) -> str:
    """``Table:`` block then ``Text:`` block (either left out when empty), bounded by ``max_chars``."""
    blocks = []
    table = linearize_table(rows)
    if table:
        blocks.append(f"Table:\n{table}")
    text = "\n".join(p.strip() for p in paragraphs if p.strip())
    if text:
        blocks.append(f"Text:\n{text}")
    return truncate_text("\n\n".join(blocks), max_chars)
