"""make demo's configuration: experiment=demo / demo_act compose with the settings README "What make demo does" states."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_config_composition import compose_resolved  # noqa: E402


def test_demo_composes_with_the_readme_settings():
    _, cfg = compose_resolved("train", ["experiment=demo"])
    data = cfg["dataset"]
    assert data["name"] == "synthetic_tables" and data["dir"].endswith("/synthetic_lookup")
    assert (data["kinds"], data["layout"], data["entities_per_table"], data["metrics_per_table"],
            data["whole_numbers"]) == (["lookup"], "sentences", 2, 2, True)
    assert (data["max_train_examples"], data["max_val_examples"], data["max_eval_examples"]) == (96, 8, 30)
    assert cfg["student"]["source"] == "smollm2_gguf" and cfg["student"]["lora"]["enabled"] is True
    trainer = cfg["trainer"]
    assert (trainer["name"], trainer["max_epochs"], trainer["batch_size"], trainer["lr"]) == ("sft", 1, 4, 3.0e-4)


def test_demo_act_composes_with_the_readme_settings():
    _, cfg = compose_resolved("train", ["experiment=demo_act", "sft_policy=/d/sft/policy", "act_pairs_dir=/d/pairs"])
    trainer = cfg["trainer"]
    assert trainer["name"] == "act" and trainer["init_policy"] == "/d/sft/policy"
    assert trainer["pairs_path"] == "/d/pairs/train.jsonl"
    assert (trainer["lr"], trainer["beta"], trainer["alpha"], trainer["batch_size"], trainer["max_turns"]) == \
        (1.0e-4, 0.1, 1.0, 4, 2)
    assert cfg["dataset"]["kinds"] == ["lookup"] and cfg["dataset"]["layout"] == "sentences"


def test_demo_evaluation_and_fully_specified_protocol_compose():
    _, cfg = compose_resolved("evaluate", ["experiment=demo", "protocol=fully_specified", "label=base"])
    assert cfg["protocol"]["runner"] == "clarifylab.evaluation.fully_specified.run_fully_specified"
    assert cfg["max_examples"] == 30 and cfg["generation"]["max_new_tokens"] == 24
    assert cfg["dataset"]["kinds"] == ["lookup"]


def test_act_pairs_read_the_demo_dataset():
    _, cfg = compose_resolved("generate", ["task=act_pairs", "dataset@task.dataset=synthetic_lookup"])
    assert cfg["task"]["dataset"]["dir"].endswith("/synthetic_lookup")
    assert cfg["task"]["dataset"]["layout"] == "sentences"
