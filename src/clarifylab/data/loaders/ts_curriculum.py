"""A teacher-student curriculum build (``python generate.py task=ts_curriculum``) as a dataset: ``<dir>/<split>.jsonl``.

``train`` / ``validation`` hold the kept clarification (and, when configured, correction) dialogues as Examples;
``test`` the verified ablated tasks of the held-out tables (the benchmark; ``meta.ts`` keeps the removed
information, the original question and context); ``clarification`` / ``correction`` every kept dialogue.
"""

from __future__ import annotations

import os
from pathlib import Path

from clarifylab.data.jsonl import read_examples
from clarifylab.data.schema import Example
from clarifylab.errors import DataNotFoundError


def load_ts_curriculum_split(out_dir: str | os.PathLike[str], split: str) -> list[Example]:
    """The Examples of ``<out_dir>/<split>.jsonl``.

    Raises:
        DataNotFoundError: no such file (says how to build it).
    """
    path = Path(out_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"{path}: curriculum split {split!r} not found. Build it with `python generate.py "
                                f"task=ts_curriculum` (or experiment=ts/cpu_build_tatqa), or point dataset.dir at a build")
    return read_examples(path)
