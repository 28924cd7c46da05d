"""DPO-Dist: the stronger teacher's reply wins, the weaker's loses, on the policy's own prompt; empty and
identical replies are dropped; generate.py's task=dpo_dist_pairs runs two real (tiny) teachers."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from clarifylab.backends.base import SamplingParams
from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.methods.act.dpo_dist_pairs import build_dist_pairs, generate_dpo_dist_pairs
from clarifylab.training.preference_data import read_pairs

register_resolvers()


class Scripted:
    """A teacher that replies from a list, recording the prompts it saw."""

    def __init__(self, name, replies):
        self.model_id, self.replies, self.seen = name, replies, []

    def complete(self, batch, params):
        self.seen.extend(batch)
        return self.replies[:len(batch)]


@pytest.fixture(scope="module")
def examples():
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 0, "test": 0})["train"][:4]


def test_strong_reply_wins_on_the_policy_prompt_and_degenerate_pairs_are_dropped(examples):
    strong = Scripted("big", ["Which year?", " 7 ", "", "same"])
    weak = Scripted("small", ["It is 3.", "8", "x", " same "])
    pairs, counts = build_dist_pairs(examples, strong, weak, params=SamplingParams(max_new_tokens=8),
                                     instruction="Be brief.")
    assert counts == {"examples": 4, "pairs": 2, "empty": 1, "identical": 1}
    assert [p.id for p in pairs] == [examples[0].id, examples[1].id]
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in pairs] == [("Which year?", "It is 3."),
                                                                                  ("7", "8")]
    expected_prompt = prompt_messages(examples[0], "Be brief.")
    assert pairs[0].prompt == expected_prompt and strong.seen[0] == weak.seen[0] == expected_prompt
    assert pairs[0].meta["source"] == "dpo_dist" and pairs[0].meta["example"]["id"] == examples[0].id


def test_a_teacher_returning_too_few_replies_is_an_error(examples):
    with pytest.raises(RuntimeError, match="weak teacher returned 1 replies for 4 prompts"):
        build_dist_pairs(examples, Scripted("a", ["1", "2", "3", "4"]), Scripted("b", ["1"]),
                         params=SamplingParams())


def test_generate_task_with_two_tiny_teachers_writes_pairs_and_manifest(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("generate", overrides=[
            "task=dpo_dist_pairs", "teacher@task.strong=tiny", "teacher@task.weak=tiny", "task.weak.model.seed=1",
            "task.weak.namespace=teacher_tiny_weak", "task.max_examples=3", "task.max_new_tokens=6",
            f"paths.generated_dir={tmp_path / 'gen'}", f"paths.cache_dir={tmp_path / 'cache'}"])
    manifest = instantiate(cfg.task)
    out = tmp_path / "gen" / "dpo_dist_pairs" / "synthetic_tables"
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]
    for split in ("train", "validation"):
        pairs = read_pairs(out / f"{split}.jsonl")
        counts = manifest["counts"][split]
        assert counts["examples"] == 3 and len(pairs) == counts["pairs"] == 3 - counts["empty"] - counts["identical"]
        assert all(p.chosen != p.rejected for p in pairs)
    assert manifest["usage"]["strong"]["calls"] == manifest["usage"]["weak"]["calls"] == 2
    assert {p.name for p in (tmp_path / "cache" / "calls").iterdir()} >= {"teacher_tiny.sqlite",
                                                                        "teacher_tiny_weak.sqlite"}


def test_missing_teacher_names_the_role_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="the weak model is not configured.*teacher@task.weak=tiny"):
        generate_dpo_dist_pairs(str(tmp_path), {"name": "synthetic_tables"}, {"kind": "transformers",
                                "model": {"source": "tiny"}}, {"name": "none"}, {"cache_dir": str(tmp_path)})
