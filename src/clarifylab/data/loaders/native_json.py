"""Reading a dataset's native JSON file and checking the fields of its records.

Every error names the file, the record (e.g. ``dialogue 3 (table uid ...)``) and the field at fault,
and says what to do. Nothing here writes anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarifylab.errors import DataFormatError, DataNotFoundError


def read_json_file(path: str | os.PathLike[str], dataset: str, expected: str) -> Any:
    """Parse the JSON file at ``path``.

    Args:
        path: the file.
        dataset: the dataset's name, for messages (``PACIFIC``).
        expected: where the file lies under ``paths.data_dir`` (``pacific/validation.json``).

    Raises:
        DataNotFoundError: no such file (names the path and the options that set it).
        DataFormatError: not valid UTF-8 JSON (names the file and the position).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: {dataset} file not found. Point `dataset.path=<file>` at it, or set `paths.data_dir` "
            f"(env CLARIFYLAB_DATA_DIR) to the folder that holds {expected} (see shared/data/SOURCES.md).")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column "
                              f"{error.colno}); restore the upstream {dataset} file") from error
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); restore the "
                              f"upstream {dataset} file") from error


_TYPE_NAMES = {str: "a string", bool: "true/false", int: "an integer", float: "a number", list: "a list",
               dict: "an object"}


def _describe(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in types)


@dataclass(frozen=True)
class RecordLocation:
    """Where a record lies, for error messages: ``<path>: <record>: field '<field>' <problem>``."""

    path: Path
    record: str

    def error(self, field: str, problem: str) -> DataFormatError:
        """A :class:`DataFormatError` naming file, record and field."""
        return DataFormatError(f"{self.path}: {self.record}: field '{field}' {problem}; fix the record or "
                               f"restore the upstream file")

    def get(self, container: Any, key: str, field: str, *types: type, optional: bool = False) -> Any:
        """``container[key]`` checked to be one of ``types`` (``bool`` is never taken for a number).

        Args:
            container: the JSON object holding the field (must be a dict).
            key: the key inside ``container``.
            field: the field's full name in messages (``questions[2].answer``).
            types: accepted Python types.
            optional: a missing key gives ``None`` instead of an error.
        """
        if not isinstance(container, dict):
            raise self.error(field.rsplit(".", 1)[0] if "." in field else field,
                             f"must be an object, got {type(container).__name__}")
        if key not in container:
            if optional:
                return None
            raise self.error(field, "is missing")
        value = container[key]
        is_bool = isinstance(value, bool)
        if not isinstance(value, types) or (is_bool and bool not in types):
            raise self.error(field, f"must be {_describe(types)}, got {json.dumps(value)[:80]}")
        return value

    def text(self, container: Any, key: str, field: str, allow_empty: bool = False) -> str:
        """A string field, stripped; empty (after stripping) is an error unless ``allow_empty``."""
        value = self.get(container, key, field, str).strip()
        if not value and not allow_empty:
            raise self.error(field, "is empty")
        return value
