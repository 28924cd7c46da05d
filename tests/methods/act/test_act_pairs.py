"""ACT Alg. 1: exact pairs from a scripted M, pseudo-labels, random actions, and generate.py's task=act_pairs
through the tiny model (with its call cache)."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from clarifylab.backends.base import SamplingParams
from clarifylab.config import PROJECT_ROOT, data_tag, register_resolvers
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.methods.act.pairs import ACTION_TASKS, build_act_pairs, generate_act_pairs, randomize_actions
from clarifylab.training.preference_data import read_pairs

register_resolvers()


class ScriptedGenerator:
    """M: a clarifying question or an answer, depending on the task line of the last user message; the
    number of demonstrations shown is written into the reply."""

    name = "scripted"
    model_id = "scripted-m"

    def __init__(self) -> None:
        self.calls: list[list[list[dict]]] = []

    def complete(self, batch, params):
        self.calls.append([list(c) for c in batch])
        replies = []
        for conversation in batch:
            demos = sum(m["role"] == "assistant" for m in conversation)
            if conversation[-1]["content"].endswith(ACTION_TASKS[Action.CLARIFY]):
                replies.append(f"Which one do you mean? ({demos} demos)")
            else:
                replies.append(f"It is 7. ({demos} demos)")
        return replies


class AllAnswer:
    """G that labels every response as an answer."""

    def classify(self, responses, examples=None):
        return [Action.ANSWER] * len(responses)


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 0, "test": 0})["train"]


def test_pairs_are_gold_versus_m_reply_of_the_other_action_in_one_call(examples):
    # train-t000-q0 answer '1'; q1 clarify (company); q2 clarify (year); q3 answer '1.09'
    assert [e.action for e in examples] == [Action.ANSWER, Action.CLARIFY, Action.CLARIFY, Action.ANSWER]
    generator = ScriptedGenerator()
    pairs, counts = build_act_pairs(examples, generator, params=SamplingParams(max_new_tokens=16), k=4, seed=0)
    assert len(generator.calls) == 1 and len(generator.calls[0]) == 4
    assert counts == {"examples": 4, "pairs": 4, "empty_losing": 0, "clarify": 2, "answer": 2,
                      "pseudo_label_disagreements": 0}
    # Only two examples of each action exist, and an example never demonstrates for itself: 2 demos each.
    assert [p.rejected for p in pairs] == [
        [{"role": "assistant", "content": "Which one do you mean? (2 demos)"}],
        [{"role": "assistant", "content": "It is 7. (2 demos)"}],
        [{"role": "assistant", "content": "It is 7. (2 demos)"}],
        [{"role": "assistant", "content": "Which one do you mean? (2 demos)"}]]
    for pair, example in zip(pairs, examples):
        assert pair.id == example.id and pair.prompt == prompt_messages(example)
        assert pair.chosen == [{"role": "assistant", "content": example.response}]
        assert pair.meta["action"] == example.action.value == pair.meta["dataset_action"]
        assert pair.meta["rejected_action"] == example.action.other().value
        assert Example.from_dict(pair.meta["example"]) == example
    # q0 (answer) asks M for a clarifying question, shown the two gold clarifying questions as demonstrations.
    demos = [m["content"] for m in generator.calls[0][0] if m["role"] == "assistant"]
    assert sorted(demos) == sorted([examples[1].response, examples[2].response])
    assert generator.calls[0][0][-1]["content"].endswith(ACTION_TASKS[Action.CLARIFY])
    assert examples[0].history[-1].content in generator.calls[0][0][-1]["content"]


def test_empty_m_replies_are_dropped_and_counted(examples):
    class Silent(ScriptedGenerator):
        def complete(self, batch, params):
            return ["" if i == 1 else "x ?" for i in range(len(batch))]

    pairs, counts = build_act_pairs(examples, Silent(), params=SamplingParams(), k=1)
    assert [p.id for p in pairs] == [examples[0].id, examples[2].id, examples[3].id]
    assert counts["empty_losing"] == 1 and counts["pairs"] == 3


def test_pseudo_labels_replace_dataset_actions(examples):
    generator = ScriptedGenerator()
    pairs, counts = build_act_pairs(examples, generator, params=SamplingParams(), k=4, classifier=AllAnswer())
    assert [p.meta["action"] for p in pairs] == ["answer"] * 4
    assert [p.meta["dataset_action"] for p in pairs] == ["answer", "clarify", "clarify", "answer"]
    assert counts["pseudo_label_disagreements"] == 2 and counts["answer"] == 4
    # Every loser is now a clarifying question; demonstrations come from examples (pseudo-)labelled clarify: none.
    assert all(p.rejected[0]["content"] == "Which one do you mean? (0 demos)" for p in pairs)


def test_randomize_actions_swaps_sides_and_actions_deterministically():
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 10, "validation": 0, "test": 0})["train"]
    pairs, _ = build_act_pairs(corpus, ScriptedGenerator(), params=SamplingParams(), k=1)
    randomized = randomize_actions(pairs, seed=3)
    assert randomized == randomize_actions(pairs, seed=3)
    swapped = [new for new in randomized if new.meta["random_actions"]]
    assert 0.25 < len(swapped) / len(pairs) < 0.75
    assert randomize_actions(pairs, seed=4) != randomized
    for old, new in zip(pairs, randomized):
        if new.meta["random_actions"]:
            assert (new.chosen, new.rejected) == (old.rejected, old.chosen)
            assert (new.meta["action"], new.meta["rejected_action"]) == (old.meta["rejected_action"],
                                                                          old.meta["action"])
        else:
            assert (new.chosen, new.rejected, new.meta["action"]) == (old.chosen, old.rejected, old.meta["action"])
        assert new.meta["dataset_action"] == old.meta["dataset_action"]


def compose_task(tmp_path, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("generate", overrides=["task=act_pairs", f"paths.generated_dir={tmp_path / 'gen'}",
                                              f"paths.cache_dir={tmp_path / 'cache'}", *overrides])


def test_generate_task_through_the_tiny_teacher_is_cached_and_reproducible(tmp_path):
    cfg = compose_task(tmp_path, "teacher@task.teacher=tiny", "task.max_examples=3", "task.max_new_tokens=6",
                       "task.k=1", "task.pseudo_labels=true")
    manifest = instantiate(cfg.task)
    out = tmp_path / "gen" / "act_pairs" / data_tag("synthetic_tables", pseudo_labels=True)  # the default out_dir
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]
    for split in ("train", "validation"):
        counts = manifest["counts"][split]
        pairs = read_pairs(out / f"{split}.jsonl")
        assert counts["examples"] == 3 and counts["pairs"] == len(pairs) == 3 - counts["empty_losing"]
        assert counts["pseudo_label_disagreements"] == 0  # the heuristic G agrees with the synthetic gold actions
        assert all(p.meta["rejected_action"] != p.meta["action"] for p in pairs)
    assert manifest["usage"]["teacher"]["calls"] == 2  # one batched call per split
    assert (tmp_path / "cache" / "calls" / "teacher_tiny.sqlite").is_file()
    first = (out / "train.jsonl").read_text()
    again = instantiate(compose_task(tmp_path, "teacher@task.teacher=tiny", "task.max_examples=3",
                                     "task.max_new_tokens=6", "task.k=1", "task.pseudo_labels=true").task)
    assert (out / "train.jsonl").read_text() == first
    assert again["usage"]["teacher"]["backend_calls"] == 0  # served from the call cache


def test_generate_without_teacher_fails_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="teacher@task.teacher=smollm2"):
        generate_act_pairs(str(tmp_path), {"name": "synthetic_tables"}, {"name": "none"}, {},
                           {"cache_dir": str(tmp_path)})
