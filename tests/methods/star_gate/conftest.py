"""A hand-made STaR-GATE data folder in the native layout (assistant_gate_history), in the tiny model's vocabulary."""

from __future__ import annotations

import json

import pytest

TASKS = {
    "A": ["what is the total revenue", "which company has the highest profit", "what is the average price"],
    "B": ["what is the net income", "which year has the lowest cost", "what is the growth rate"],
    "test": ["what is the cash flow", "which segment has the largest margin"],
}
PERSONAS = {split: ["she has one company", "he has two companies"] for split in TASKS}
NAMES = {split: ["ann", "bob"] for split in TASKS}


def oracle_text(i: int, j: int, split: str) -> str:
    return ["the answer is one hundred", "the total is two million", "it is the first quarter"][(i + j) % 3]


def write_stargate_tree(root, oracle_splits=("A", "B", "test")):
    """Write the native layout under ``root``; oracle answers for ``oracle_splits`` only."""
    for split, tasks in TASKS.items():
        (root / "instruct-questions").mkdir(parents=True, exist_ok=True)
        (root / "instruct-questions" / f"{split}.json").write_text(json.dumps(tasks))
        personas = root / "persona-generation" / "new-personas"
        personas.mkdir(parents=True, exist_ok=True)
        (personas / f"{split}.json").write_text(json.dumps(PERSONAS[split]))
        (personas / f"{split}_NAMES.json").write_text(json.dumps(NAMES[split]))
        if split in oracle_splits:
            (root / "gold-responses").mkdir(exist_ok=True)
            gold = {f"prompt-{i} persona-{j}": [" " + oracle_text(i, j, split)]
                    for j in range(len(PERSONAS[split])) for i in range(len(tasks))}
            (root / "gold-responses" / f"{split}.json").write_text(json.dumps(gold))
    return root


@pytest.fixture
def stargate_dir(tmp_path):
    return write_stargate_tree(tmp_path / "assistant_gate_history")


@pytest.fixture
def stargate_tree():
    """``stargate_tree(root, oracle_splits=...)``: :func:`write_stargate_tree`."""
    return write_stargate_tree
