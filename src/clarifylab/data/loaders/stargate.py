"""STaR-GATE persona-task data (Andukuri et al., 2024; scandukuri/assistant-gate ``data/``) -> Examples.

The native layout under ``dir`` (``assistant_gate_history`` in ../shared/data/stargate)::

    instruct-questions/<split>.json                  list of task strings (A: 1000, B: 1000, test: 100)
    persona-generation/new-personas/<split>.json     list of persona descriptions (A: 20, B: 20, test: 5)
    persona-generation/new-personas/<split>_NAMES.json   the persona's name, same order
    gold-responses/<split>.json                      {"prompt-i persona-j": [oracle answer]} (only test upstream)

Personas may come from another folder (``personas_dir``: a ``generate.py task=stargate_personas`` build, same
file names flat in it) and oracle answers from ``oracle_dir`` (a ``task=stargate_oracle`` build: ``<split>.json``
keyed like the native file); when ``oracle_dir`` has no file for a split the native ``gold-responses`` is used.

One Example per (persona j, task i) pair, persona-major (all tasks of persona 0 first):

- ``id``: ``"prompt-i persona-j"`` (the key of the oracle file);
- ``history``: ``[Turn("user", "My name is {name}. {task}")]`` — the user's first turn, no persona;
- ``response`` = ``goal[0]``: the oracle answer (written by a model that saw the persona); ``""`` and ``goal=[]``
  when the split has none yet (simulation needs it: the recipe refuses such a split);
- ``context``: ``""`` (nothing is grounded); ``action``: ``answer``;
- ``meta``: ``split``, ``prompt_index``, ``persona_index``, ``task`` (the bare task), ``name``, ``persona``.

A split named ``<something>.jsonl`` is read as an Example JSONL instead (``data/jsonl.py``): that is how the
STaR-GATE recipe hands an iteration's selected conversations to the SFT recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarifylab.data.jsonl import read_examples
from clarifylab.data.loaders.native_json import read_json_file
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError

TASK = "stargate"
TASKS_DIR = "instruct-questions"
PERSONAS_DIR = "persona-generation/new-personas"
GOLD_DIR = "gold-responses"


def pair_id(prompt_index: int, persona_index: int) -> str:
    """The native key of a (task, persona) pair: ``"prompt-i persona-j"``."""
    return f"prompt-{prompt_index} persona-{persona_index}"


def first_user_turn(name: str, task: str) -> str:
    """The user's opening message (the official code's form): ``"My name is {name}. {task}"``."""
    return f"My name is {name}. {task}"


@dataclass(frozen=True)
class StarGateSplit:
    """The raw records of one split: tasks, personas with names, oracle answers by pair id."""

    tasks: list[str]
    personas: list[str]
    names: list[str]
    oracle: dict[str, str]


def _read_json(path: Path, kind: type) -> Any:
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist: point dataset.dir at the STaR-GATE data folder "
                                "(assistant_gate_history) or build the missing file with generate.py")
    value = read_json_file(path, "STaR-GATE", f"stargate/{path.parent.name}/{path.name}")
    if not isinstance(value, kind):
        raise DataFormatError(f"{path}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _strings(path: Path) -> list[str]:
    values = _read_json(path, list)
    if not all(isinstance(v, str) for v in values):
        raise DataFormatError(f"{path}: expected a list of strings")
    return values


def read_oracle_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"prompt-i persona-j": answer}`` from a native oracle file (values are one-element lists or strings)."""
    raw = _read_json(Path(path), dict)
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, list) and value and isinstance(value[0], str):
            value = value[0]
        if not isinstance(value, str):
            raise DataFormatError(f"{path}: {key!r} must map to a string or a list of strings")
        out[key] = value.strip()
    return out


def read_split(directory: str | os.PathLike[str], split: str, personas_dir: str | os.PathLike[str] | None = None,
               oracle_dir: str | os.PathLike[str] | None = None) -> StarGateSplit:
    """Read split ``split`` (``A`` | ``B`` | ``test``) of the native folder (module docstring)."""
    root = Path(directory)
    tasks = _strings(root / TASKS_DIR / f"{split}.json")
    persona_root = Path(personas_dir) if personas_dir else root / PERSONAS_DIR
    personas = _strings(persona_root / f"{split}.json")
    names = _strings(persona_root / f"{split}_NAMES.json")
    if len(names) != len(personas):
        raise DataFormatError(f"{persona_root}: {len(personas)} personas but {len(names)} names for split {split!r}")
    oracle: dict[str, str] = {}
    generated = Path(oracle_dir) / f"{split}.json" if oracle_dir else None
    native = root / GOLD_DIR / f"{split}.json"
    if generated is not None and generated.is_file():
        oracle = read_oracle_file(generated)
    elif native.is_file():
        oracle = read_oracle_file(native)
    return StarGateSplit(tasks=tasks, personas=personas, names=names, oracle=oracle)


def split_examples(data: StarGateSplit, split: str, max_tasks: int | None = None,
                   max_personas: int | None = None) -> list[Example]:
    """One Example per (persona, task) pair of the first ``max_personas`` personas x ``max_tasks`` tasks."""
    examples = []
    for j, (persona, name) in enumerate(list(zip(data.personas, data.names))[:max_personas]):
        for i, task in enumerate(data.tasks[:max_tasks]):
            key = pair_id(i, j)
            oracle = data.oracle.get(key, "")
            examples.append(Example(
                id=key, task=TASK, context="", history=[Turn("user", first_user_turn(name, task))],
                response=oracle, action=Action.ANSWER, goal=[oracle] if oracle else [],
                meta={"split": split, "prompt_index": i, "persona_index": j, "task": task, "name": name,
                      "persona": persona}))
    return examples


def load_stargate(directory: str | os.PathLike[str], split: str, personas_dir: str | None = None,
                  oracle_dir: str | None = None, max_tasks: int | None = None,
                  max_personas: int | None = None) -> list[Example]:
    """The Examples of ``split``; a split ending in ``.jsonl`` is an Example JSONL file (module docstring)."""
    if split.endswith(".jsonl"):
        return read_examples(split)
    return split_examples(read_split(directory, split, personas_dir, oracle_dir), split, max_tasks, max_personas)
