"""What distinguishes ACT data and runs is in their names (clarifylab.config.data_tag): Alg. 1 folders, ACT's
default pairs paths and run names differ by conversations, seed, pseudo-labels and ablation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clarifylab.config import data_tag

sys.path.insert(0, str(Path(__file__).parent))
from test_config_composition import compose_resolved  # noqa: E402


@pytest.mark.parametrize(("args", "tag"), [
    (("pacific",), "pacific"),
    (("pacific", 50), "pacific-c50"),
    (("pacific", 50, 1, True), "pacific-c50-pseudo-s1"),
    (("pacific", None, 0, False, True), "pacific-random"),
    (("pacific", 100, 2, False, False, "no_on_policy"), "pacific-c100-no_on_policy-s2"),
    (("abg_coqa", 250, 0, False, False, "none"), "abg_coqa-c250"),
])
def test_data_tag(args, tag):
    assert data_tag(*args) == tag


def pairs_out_dir(generated: Path, *overrides: str) -> str:
    _, container = compose_resolved("generate", ["task=act_pairs", f"paths.generated_dir={generated}", *overrides])
    return container["task"]["out_dir"]


def test_alg1_folders_differ_by_conversations_seed_labels_and_random_actions(tmp_path):
    pacific = ["dataset@task.dataset=pacific", "task.dataset.conversations=50"]
    dirs = {
        "plain": pairs_out_dir(tmp_path, *pacific),
        "c100": pairs_out_dir(tmp_path, "dataset@task.dataset=pacific", "task.dataset.conversations=100"),
        "seed": pairs_out_dir(tmp_path, *pacific, "task.seed=1"),
        "pseudo": pairs_out_dir(tmp_path, *pacific, "task.pseudo_labels=true"),
        "random": pairs_out_dir(tmp_path, *pacific, "task.random_actions=true"),
    }
    assert dirs == {"plain": f"{tmp_path}/act_pairs/pacific-c50", "c100": f"{tmp_path}/act_pairs/pacific-c100",
                    "seed": f"{tmp_path}/act_pairs/pacific-c50-s1",
                    "pseudo": f"{tmp_path}/act_pairs/pacific-c50-pseudo",
                    "random": f"{tmp_path}/act_pairs/pacific-c50-random"}
    assert pairs_out_dir(tmp_path) == f"{tmp_path}/act_pairs/synthetic_tables"


def train(tmp_path: Path, *overrides: str) -> dict:
    _, container = compose_resolved("train", [f"paths.generated_dir={tmp_path}", *overrides])
    return container


def test_act_reads_the_folder_alg1_writes_for_the_same_settings(tmp_path):
    for seed in (0, 3):
        act = train(tmp_path, "trainer=act", "dataset=pacific", "dataset.conversations=100", f"seed={seed}")
        built = pairs_out_dir(tmp_path, "dataset@task.dataset=pacific", "task.dataset.conversations=100",
                              f"task.seed={seed}")
        assert act["trainer"]["pairs_path"] == f"{built}/train.jsonl"
        assert act["trainer"]["val_pairs_path"] == f"{built}/validation.jsonl"


def test_run_names_and_pairs_differ_by_seed_pseudo_labels_and_ablation(tmp_path):
    paper = ["experiment=act_paper/pacific_act", "sft_policy=/runs/sft/policy"]
    runs = {
        "act": train(tmp_path, *paper),
        "seed": train(tmp_path, *paper, "seed=1"),
        "pseudo": train(tmp_path, "experiment=act_paper/pacific_act_pseudo", "sft_policy=/runs/sft/policy"),
        "ablation": train(tmp_path, "experiment=act_paper/ablation_no_on_policy", "sft_policy=/runs/sft/policy"),
        "c100": train(tmp_path, *paper, "dataset.conversations=100"),
    }
    names = {key: run["run_name"] for key, run in runs.items()}
    assert names == {"act": "act-hub-pacific-c50", "seed": "act-hub-pacific-c50-s1",
                     "pseudo": "act-hub-pacific-c50-pseudo", "ablation": "act-hub-pacific-c50-no_on_policy",
                     "c100": "act-hub-pacific-c100"}
    assert runs["act"]["logger"]["wandb"]["name"] == "act-hub-pacific-c50"   # the W&B run name follows
    pairs = {key: run["trainer"]["pairs_path"] for key, run in runs.items()}
    assert pairs == {"act": f"{tmp_path}/act_pairs/pacific-c50/train.jsonl",
                     "seed": f"{tmp_path}/act_pairs/pacific-c50-s1/train.jsonl",
                     "pseudo": f"{tmp_path}/act_pairs/pacific-c50-pseudo/train.jsonl",
                     "ablation": f"{tmp_path}/act_pairs/pacific-c50/train.jsonl",   # a train-time ablation
                     "c100": f"{tmp_path}/act_pairs/pacific-c100/train.jsonl"}


def test_evaluation_run_names_carry_seed_and_conversations():
    _, plain = compose_resolved("evaluate", ["label=sft"])
    _, other = compose_resolved("evaluate", ["label=sft", "seed=2", "conversations=50"])
    assert (plain["run_name"], other["run_name"]) == ("eval-sft-synthetic_tables", "eval-sft-synthetic_tables-c50-s2")
