"""Atomic file writes: outputs appear whole or not at all, so a killed job never leaves half a file."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new, empty hidden sibling of ``path`` with mode 0666 & ~umask, as ``open(path, "w")`` would (not
    ``tempfile.mkstemp``'s owner-only 0600). Returns (file descriptor, its path)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def temporary_directory(parent: str | os.PathLike[str], prefix: str) -> Path:
    """Create a new, empty directory ``<parent>/<prefix><8 hex>`` with mode 0777 & ~umask, as ``mkdir`` would (not
    ``tempfile.mkdtemp``'s owner-only 0700): where a folder is assembled before it is moved into place whole (a
    saved policy, the converted SmolLM2 cache), so the result is as readable as any other output."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing and move it over ``path`` on success.

    On an exception the temporary file is removed and an existing ``path`` is left untouched. The file gets the
    permissions a plain ``open()`` gives (0666 minus the umask: 0644 under umask 022).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path) as handle:
        handle.write(text)
