"""JSONL (de)serialization of Examples: one JSON object per line; errors name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from clarifylab.data.schema import Example
from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.io import atomic_open


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example]) -> int:
    """Write Examples to ``path`` atomically; returns the number written."""
    count = 0
    with atomic_open(path) as handle:
        for example in examples:
            handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_examples(path: str | os.PathLike[str]) -> list[Example]:
    """Read Examples from a JSONL file.

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: a line is not valid JSON or not a valid Example (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file. Run `python generate.py task=...` to build it, "
                                f"or point paths.data_dir / the dataset options at the right place.")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"{path}:{line_number}: not valid JSON ({error.msg} at column {error.colno})") from error
            if not isinstance(record, dict):
                raise DataFormatError(f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}")
            try:
                examples.append(Example.from_dict(record))
            except (KeyError, TypeError, ValueError) as error:
                raise DataFormatError(f"{path}:{line_number}: not a valid Example: {error}") from error
    return examples
