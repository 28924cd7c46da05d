"""dataset=stargate: the native assistant-gate layout -> one Example per (persona, task) pair (hand-made fixture), the
generated-folder overrides, the Example-JSONL split, and the real data folder when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarifylab.data.jsonl import write_examples
from clarifylab.data.loaders.stargate import load_stargate, pair_id
from clarifylab.data.registry import load_dataset_split
from clarifylab.errors import DataFormatError, DataNotFoundError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stargate" / "assistant_gate_history"


def write_tree(root: Path, gold: dict | None = None) -> Path:
    (root / "instruct-questions").mkdir(parents=True)
    (root / "instruct-questions" / "A.json").write_text(json.dumps(["Plan a trip.", "Cook dinner.", "Buy a car."]))
    personas = root / "persona-generation" / "new-personas"
    personas.mkdir(parents=True)
    (personas / "A.json").write_text(json.dumps(["1. Ann Lee, 30, a nurse.\n2. Likes hiking.", "1. Bo Chen, 60."]))
    (personas / "A_NAMES.json").write_text(json.dumps(["Ann Lee", "Bo Chen"]))
    if gold is not None:
        (root / "gold-responses").mkdir()
        (root / "gold-responses" / "A.json").write_text(json.dumps(gold))
    return root


def test_pairs_are_persona_major_with_first_turn_and_oracle(tmp_path):
    root = write_tree(tmp_path / "ag", gold={"prompt-1 persona-0": [" Pasta, Ann. "], "prompt-2 persona-1": "Bus."})
    examples = load_stargate(root, "A")
    assert [e.id for e in examples] == [pair_id(i, j) for j in range(2) for i in range(3)]
    first = examples[1]
    assert first.id == "prompt-1 persona-0" and first.task == "stargate" and first.context == ""
    assert [(t.role, t.content) for t in first.history] == [("user", "My name is Ann Lee. Cook dinner.")]
    assert first.response == "Pasta, Ann." and first.goal == ["Pasta, Ann."] and first.action.value == "answer"
    assert first.meta == {"split": "A", "prompt_index": 1, "persona_index": 0, "task": "Cook dinner.",
                          "name": "Ann Lee", "persona": "1. Ann Lee, 30, a nurse.\n2. Likes hiking."}
    assert examples[5].response == "Bus." and examples[0].response == "" and examples[0].goal == []
    sliced = load_stargate(root, "A", max_tasks=2, max_personas=1)
    assert [e.id for e in sliced] == ["prompt-0 persona-0", "prompt-1 persona-0"]


def test_generated_folders_override_native_files_and_jsonl_splits(tmp_path):
    root = write_tree(tmp_path / "ag", gold={"prompt-0 persona-0": ["native"]})
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "A.json").write_text(json.dumps({"prompt-0 persona-0": ["generated"]}))
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "A.json").write_text(json.dumps(["1. Cy Dee, 22."]))
    (personas / "A_NAMES.json").write_text(json.dumps(["Cy Dee"]))
    examples = load_stargate(root, "A", personas_dir=str(personas), oracle_dir=str(oracle))
    assert len(examples) == 3 and examples[0].response == "generated"
    assert examples[0].history[0].content == "My name is Cy Dee. Plan a trip."
    assert load_stargate(root, "A", oracle_dir=str(tmp_path / "none"))[0].response == "native"
    write_examples(tmp_path / "sft.jsonl", examples[:2])
    cfg = OmegaConf.create({"name": "stargate", "dir": str(root), "personas_dir": None, "oracle_dir": None,
                            "max_tasks": None, "max_personas": None})
    assert [e.id for e in load_dataset_split(cfg, str(tmp_path / "sft.jsonl"))] == [e.id for e in examples[:2]]
    assert len(load_dataset_split(cfg, "A", max_examples=4)) == 4


def test_bad_layouts_fail_with_the_file(tmp_path):
    root = write_tree(tmp_path / "ag")
    with pytest.raises(DataNotFoundError, match="B.json does not exist"):
        load_stargate(root, "B")
    (root / "persona-generation" / "new-personas" / "A_NAMES.json").write_text(json.dumps(["only one"]))
    with pytest.raises(DataFormatError, match="2 personas but 1 names"):
        load_stargate(root, "A")


@pytest.mark.skipif(not REAL.is_dir(), reason="the STaR-GATE data folder is not present")
def test_real_data_sizes():
    assert len(load_stargate(REAL, "A")) == 1000 * 20 and len(load_stargate(REAL, "B")) == 1000 * 20
    test = load_stargate(REAL, "test")
    assert len(test) == 100 * 5 and all(e.response for e in test)  # 500 oracle answers upstream
    assert test[0].history[0].content == "My name is Theo Nguyen. What is the quickest method to clean a kitchen."
    assert test[-1].id == "prompt-99 persona-4"
