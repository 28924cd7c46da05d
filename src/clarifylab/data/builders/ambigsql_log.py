"""The append-only progress log that makes an AmbigSQL build resumable.

One JSON object per line, one line per processed Spider request (a kept rewrite or a drop with its
reason), each with a unique ``id``. A batch of lines is written with one ``write`` and then flushed and
fsynced, so a killed process leaves every earlier batch intact and at most one partial last line.

On start :func:`recover_log` reads the log back: a last line without its newline, or that is not valid
JSON, is the trace of a kill mid-write and is cut off (the file is truncated to the end of the last good
line, so the next append starts on a fresh line); the ids read are the completed set. A broken line
anywhere else is not a kill: that raises :class:`DataFormatError`. A repeated id (which this writer never
produces) keeps its first record.

Beside the log, ``<log>.config.json`` holds the build's fingerprint (:func:`check_fingerprint`): resuming
with settings that change what a record would contain (prompts, teacher, seed, ...) is refused rather
than silently mixing two builds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.io import write_json

log = logging.getLogger(__name__)


def recover_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of the log at ``path`` (``[]`` when absent), after cutting off a truncated last line.

    Raises:
        DataFormatError: a line other than the last is not a JSON object with a string ``id``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    good_end = 0
    position = 0
    while position < len(data):
        newline = data.find(b"\n", position)
        end = len(data) if newline == -1 else newline + 1
        line = data[position:end]
        try:
            if newline == -1:
                raise ValueError("no newline")
            record = json.loads(line.decode("utf-8")) if line.strip() else None
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if end == len(data):
                log.warning("%s: the last line (%d bytes) is incomplete, left by an interrupted run; cutting it off "
                            "and redoing that item", path, len(line))
                break
            raise DataFormatError(f"{path}: byte {position}: a line that is not valid JSON in the middle of the "
                                  f"progress log; it is corrupt: delete it to rebuild from scratch") from None
        if record is not None:
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise DataFormatError(f"{path}: byte {position}: expected a JSON object with a string 'id'")
            if record["id"] in seen:
                log.warning("%s: id %r logged twice; keeping the first record", path, record["id"])
            else:
                seen.add(record["id"])
                records.append(record)
        good_end = position = end
    if good_end < len(data):
        with path.open("r+b") as handle:
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return records


def append_records(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """Append ``records`` as JSON lines in one write, then flush and fsync; returns how many were written."""
    lines = [json.dumps(dict(record), ensure_ascii=False) + "\n" for record in records]
    if not lines:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def fingerprint_path(log_path: str | os.PathLike[str]) -> Path:
    """``<log>.config.json`` beside the log."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".config.json")


def check_fingerprint(log_path: str | os.PathLike[str], fingerprint: Mapping[str, Any],
                      ignore: Iterable[str] = ()) -> None:
    """Record ``fingerprint`` for a new log, or check that an existing log was built with the same one
    (keys in ``ignore`` are not compared, e.g. the teacher's id when no teacher was built).

    Raises:
        ConfigError: the log exists and was written with other settings (names the differing keys).
    """
    path = fingerprint_path(log_path)
    current = json.loads(json.dumps(dict(fingerprint), default=str))
    if Path(log_path).is_file() and path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        skip = set(ignore)
        keys = sorted(k for k in set(stored) | set(current) if k not in skip and stored.get(k) != current.get(k))
        if keys:
            changes = "; ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in keys)
            raise ConfigError(f"{log_path} was built with other settings ({changes}). Resume with the original "
                              f"settings, choose a new task.out_dir, or delete {log_path} and {path} to rebuild")
        return
    write_json(path, current)
