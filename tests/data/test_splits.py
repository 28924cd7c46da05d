"""Conversation-level splits: determinism, disjointness, exact sizes, nested subsets, growth behaviour."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.splits import (
    SplitPlan,
    conversation_splits,
    merge_by_content,
    passage_key,
    seeded_order,
    select_split,
    split_dialogues,
    subset_conversations,
    unit_hash,
)
from clarifylab.errors import ConfigError, DataFormatError

IDS = [f"dialogue-{i:03d}" for i in range(300)]
# Values of these tests (the shipped ones live in conf/dataset/*.yaml alone: SplitPlan has no defaults).
PLAN = {"eval_fraction": 0.2, "split_seed": 0, "val_conversations": 10, "conversations": None, "subset_seed": 0}


def plan_with(**changes) -> SplitPlan:
    return SplitPlan(**{**PLAN, **changes})


def test_unit_hash_is_fixed_and_uniform():
    assert unit_hash("a", 0) == unit_hash("a", 0)
    assert unit_hash("a", 0) != unit_hash("a", 1) != unit_hash("a", 1, "eval")
    values = [unit_hash(i, 0) for i in IDS]
    assert all(0 <= v < 1 for v in values)
    assert 0.4 < sum(values) / len(values) < 0.6
    assert sum(v < 0.25 for v in values) in range(50, 101)   # ~75 expected


@pytest.mark.parametrize(("n", "fraction", "expected"), [(277, 0.2, 55), (500, 0.2, 100), (300, 0.25, 75),
                                                          (10, 0.05, 1), (7, 0.0, 0), (3, 0.5, 2)])
def test_split_dialogues_sizes_are_exact(n, fraction, expected):
    pool, held_out = split_dialogues([f"id-{i}" for i in range(n)], fraction, seed=0)
    assert len(held_out) == expected and len(pool) == n - expected


def test_split_dialogues_is_deterministic_disjoint_and_order_preserving():
    pool, held_out = split_dialogues(IDS, 0.2, seed=3)
    assert (pool, held_out) == split_dialogues(IDS, 0.2, seed=3)
    assert set(pool).isdisjoint(held_out) and sorted(pool + held_out) == IDS
    assert pool == sorted(pool) and held_out == sorted(held_out)             # input order kept
    shuffled_pool, shuffled_eval = split_dialogues(list(reversed(IDS)) + IDS[:5], 0.2, seed=3)  # repeats count once
    assert set(shuffled_eval) == set(held_out) and set(shuffled_pool) == set(pool)
    assert set(split_dialogues(IDS, 0.2, seed=4)[1]) != set(held_out)


def test_growing_the_file_changes_the_eval_set_only_at_its_boundary():
    old_ids, new_ids = IDS[:200], IDS[:200] + [f"late-{i}" for i in range(10)]
    old_eval = [i for i in seeded_order(old_ids, 0, "eval") if i in set(split_dialogues(old_ids, 0.2, 0)[1])]
    new_eval = set(split_dialogues(new_ids, 0.2, 0)[1])
    kept = [i for i in old_eval if i in new_eval]
    assert kept == old_eval[:len(kept)]                      # the old ids still held out are a prefix
    assert len(kept) >= len(old_eval) - 10                   # at most as many pushed out as ids added
    assert [i for i in seeded_order(new_ids, 0) if i in set(old_ids)] == seeded_order(old_ids, 0)


def test_split_dialogues_rejects_bad_fraction():
    for fraction in (1.0, -0.1, True, "0.2"):
        with pytest.raises(ConfigError, match="dataset.eval_fraction"):
            split_dialogues(IDS, fraction, 0)


def test_subsets_have_the_asked_size_and_are_nested():
    pool = IDS[:260]
    subsets = {n: subset_conversations(pool, n, seed=0) for n in (50, 100, 250)}
    assert {n: len(s) for n, s in subsets.items()} == {50: 50, 100: 100, 250: 250}
    assert set(subsets[50]) < set(subsets[100]) < set(subsets[250]) < set(pool)
    assert subsets[100] == subset_conversations(pool, 100, seed=0)
    assert set(subset_conversations(pool, 100, seed=1)) != set(subsets[100])
    assert sorted(subset_conversations(pool, None, seed=0)) == sorted(pool)


def test_subset_errors_name_the_option():
    with pytest.raises(ConfigError, match=r"dataset.conversations=250 but the training pool has only 212"):
        subset_conversations(IDS[:212], 250, seed=0)
    for n in (0, -5, True, 2.5):
        with pytest.raises(ConfigError, match="dataset.conversations must be null or a positive integer"):
            subset_conversations(IDS, n, seed=0)


def test_conversation_splits_partition_the_ids():
    plan = plan_with(eval_fraction=0.2, val_conversations=10)
    splits = conversation_splits(IDS, plan)
    assert (len(splits["test"]), len(splits["validation"]), len(splits["train"])) == (60, 10, 230)
    assert set(splits["train"]) | set(splits["validation"]) | set(splits["test"]) == set(IDS)
    assert set(splits["train"]).isdisjoint(splits["validation"]) and set(splits["train"]).isdisjoint(splits["test"])
    assert set(splits["validation"]).isdisjoint(splits["test"])


def test_validation_does_not_depend_on_the_training_subset():
    base = conversation_splits(IDS, plan_with())
    for plan in (plan_with(conversations=50), plan_with(conversations=100, subset_seed=7)):
        splits = conversation_splits(IDS, plan)
        assert splits["validation"] == base["validation"] and splits["test"] == base["test"]
        assert set(splits["train"]) <= set(base["train"])
    fifty, hundred = (set(conversation_splits(IDS, plan_with(conversations=n))["train"]) for n in (50, 100))
    assert fifty < hundred


def test_conversation_splits_need_a_training_conversation():
    with pytest.raises(ConfigError, match="dataset.val_conversations=8 leaves no training conversation"):
        conversation_splits(IDS[:10], plan_with(eval_fraction=0.2, val_conversations=8))


def test_split_plan_reads_the_composed_dataset_node():
    # The plan comes from the YAML alone: abg_coqa.yaml's val_conversations is 20 (the old code defaulted
    # missing keys to 10 and read `{}` as a plan).
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from clarifylab.config import PROJECT_ROOT, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["dataset=abg_coqa", "dataset.conversations=50"])
    node = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "abg_coqa.yaml")
    assert SplitPlan.from_config(cfg.dataset) == SplitPlan(
        eval_fraction=node.eval_fraction, split_seed=node.split_seed, val_conversations=node.val_conversations,
        conversations=50, subset_seed=node.subset_seed)
    assert SplitPlan.from_config(cfg.dataset).val_conversations == 20
    with pytest.raises(ConfigAttributeError, match="eval_fraction"):
        SplitPlan.from_config(OmegaConf.create({"name": "x"}))


def test_split_plan_checks():
    with pytest.raises(ConfigError, match="dataset.val_conversations must be an integer >= 0"):
        plan_with(val_conversations=-1)
    with pytest.raises(ConfigError, match="dataset.split_seed"):
        plan_with(split_seed="0")


# --- select_split on Examples -------------------------------------------------------------------------


def _examples(n_conversations: int = 20, turns: int = 3) -> list[Example]:
    return [Example(id=f"c{c}-t{t}", task="toy", context="", history=[Turn("user", f"q{t}")], response="a",
                    action=Action.ANSWER, goal=["a"], meta={"conversation_id": f"c{c}"})
            for c in range(n_conversations) for t in range(turns)]


def test_select_split_keeps_conversations_whole_and_marks_the_split():
    examples = _examples()
    plan = plan_with(eval_fraction=0.25, val_conversations=3, conversations=10)
    chosen = {split: select_split(examples, split, plan) for split in ("train", "validation", "test", "all")}
    assert {k: len(v) for k, v in chosen.items()} == {"train": 30, "validation": 9, "test": 15, "all": 60}
    for split, part in chosen.items():
        assert {e.meta["split"] for e in part} == {split}
        ids = [e.id for e in part]
        assert ids == [e.id for e in examples if e.id in set(ids)]              # file order kept
        conversations = {e.meta["conversation_id"] for e in part}
        assert len(part) == 3 * len(conversations)                               # whole conversations
    assert "split" not in examples[0].meta                                      # inputs untouched


def test_select_split_errors():
    examples = _examples()
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        select_split(examples, "dev", plan_with())
    with pytest.raises(ConfigError, match="split 'test' is empty with dataset.eval_fraction"):
        select_split(examples, "test", plan_with(eval_fraction=0.0))
    with pytest.raises(ConfigError, match="dataset.val_split=null"):
        select_split(examples, "validation", plan_with(val_conversations=0))
    examples[4].meta.pop("conversation_id")
    with pytest.raises(DataFormatError, match="Example 'c1-t1' has no meta\\['conversation_id'\\]"):
        select_split(examples, "train", plan_with(val_conversations=2))


def test_passage_key_and_merge_by_content():
    assert passage_key("A  red kite.\n") == passage_key("a red kite.") != passage_key("a red kite")
    assert passage_key("x").startswith("passage-") and len(passage_key("x")) == len("passage-") + 16
    merged = merge_by_content([("b", "k1"), ("a", "k1"), ("c", "k2"), ("b", "k1")])
    assert merged == {"b": "a", "a": "a", "c": "c"}
