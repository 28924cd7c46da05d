"""JSONL files of records (one JSON object per line), written atomically, read with errors that name the
file and line; and the Example-specific reader/writer on top."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from clarifylab.data.schema import Example
from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.io import atomic_open

T = TypeVar("T")


def write_records(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write dicts to ``path`` as JSONL, atomically (all or nothing); returns the number written."""
    count = 0
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_records(path: str | os.PathLike[str], parse: Callable[[dict[str, Any]], T], kind: str,
                 missing_hint: str) -> Iterator[tuple[int, T]]:
    """Yield ``(line number, parse(record))`` for every non-blank line of a JSONL file.

    Args:
        parse: turns one JSON object into a ``T``; raises KeyError/TypeError/ValueError on a bad record.
        kind: what a record is, for messages ("Example", "preference pair").
        missing_hint: what to do when the file is absent (appended to the message).

    Raises:
        DataNotFoundError: no such file.
        DataFormatError: a line that is not a JSON object or not a valid record (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file. {missing_hint}")
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"{path}:{line_number}: not valid JSON ({error.msg} at column {error.colno})") \
                    from error
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}")
            try:
                yield line_number, parse(record)
            except (KeyError, TypeError, ValueError) as error:
                raise DataFormatError(f"{path}:{line_number}: not a valid {kind}: {error}") from error


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> int:
    """Write Examples to ``path`` atomically; returns the number written."""
    return write_records(path, (example.to_dict() for example in examples))


def read_examples(path: str | os.PathLike[str]) -> list[Example]:
    """Read Examples from a JSONL file (errors as :func:`read_records`)."""
    hint = ("Run `python generate.py task=...` to build it, or point paths.data_dir / the dataset options at the "
            "right place.")
    return [example for _, example in read_records(path, Example.from_dict, "Example", hint)]
