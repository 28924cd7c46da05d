"""Abg-CoQA loader: exact Examples from a hand-written native fixture, errors that name
file/record/field, and counts on the real copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarifylab.data.loaders.abg_coqa import load_abg_coqa, story_id
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Clarification, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "abg_coqa_small.json"
DATA_DIR = Path(os.environ.get("CLARIFYLAB_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data"))
REAL_FILE = DATA_DIR / "abg-coqa" / "coqa_abg_val.json"
STORY_ONE = ("Anna had a red kite and a blue boat. On Monday she flew the kite in the park.\n\n"
             "On Tuesday she sailed the boat on the lake.")


@pytest.fixture(scope="module")
def examples():
    return {example.id: example for example in load_abg_coqa(FIXTURE)}


def test_one_example_per_record_in_file_order():
    loaded = load_abg_coqa(FIXTURE)
    assert [e.id for e in loaded] == ["storyone|3|2", "storyone|4|2", "storytwo|2|1", "storytwo|1|1"]
    assert [e.action for e in loaded] == [Action.ANSWER, Action.CLARIFY, Action.CLARIFY, Action.ANSWER]
    assert {e.task for e in loaded} == {"abg_coqa"}


def test_non_ambiguous_record(examples):
    example = examples["storyone|3|2"]
    assert example.context == STORY_ONE
    assert example.history == [Turn("user", "who had a kite?"), Turn("assistant", "Anna"),
                               Turn("user", "what color was it?"), Turn("assistant", "red"),
                               Turn("user", "where did she fly it?")]
    assert (example.response, example.goal, example.clarifications) == ("in the park", ["in the park"], [])
    assert example.meta["conversation_id"] == "storyone"
    assert (example.meta["turn_id"], example.meta["source"], example.meta["history_turn_ids"]) == (3, "mctest", [1, 2])


def test_ambiguous_record_has_one_clarification_per_interpretation(examples):
    example = examples["storyone|4|2"]
    assert example.history == [Turn("user", "where did she fly the kite?"), Turn("assistant", "in the park"),
                               Turn("user", "when did she play with it?")]
    assert example.response == "Do you mean the kite?"
    assert example.clarifications == [Clarification("Yes.", "On Monday."),
                                      Clarification("No, I mean the boat.", "On Tuesday.")]
    assert example.goal == ["On Monday.", "On Tuesday."]
    assert example.meta["alternative_answers"] == [["Monday", "monday"], ["Tuesday", "Unknown"]]
    assert example.meta["clarification_turn_2"]["question"] == "Which toy?"
    assert example.meta["target_answer"] == "Monday" and example.meta["ambiguity"] == "ambiguous"


def test_single_interpretation_and_empty_history(examples):
    single = examples["storytwo|2|1"]
    assert single.clarifications == [Clarification("Yes, the museum.", "At nine.")]
    assert single.goal == ["At nine."] and "clarification_turn_2" not in single.meta
    assert single.meta["alternative_answers"] == [[]]
    first = examples["storytwo|1|1"]
    assert first.history == [Turn("user", "What opens at ten?")] and first.response == "the cafe"


def test_story_id_and_max_context_chars():
    assert story_id("3pxx5px6lxyuqm3uo2o1yddekb4ab3|9|2") == "3pxx5px6lxyuqm3uo2o1yddekb4ab3"
    bounded = load_abg_coqa(FIXTURE, max_context_chars=40)
    assert bounded[0].context == "Anna had a red kite and a blue [...]"
    assert bounded[0].meta["context_truncated"] is True and bounded[2].meta["context_truncated"] is True
    json.dumps([e.to_dict() for e in bounded])  # JSON-serializable


# --- errors -------------------------------------------------------------------------------------------


MALFORMED = {
    "no story": (0, lambda r: r.pop("story"), "field 'story' is missing"),
    "history answer type": (0, lambda r: r["history_turns"][1].update(answer=7),
                            "field 'history_turns[1].answer' must be a string, got 7"),
    "empty target question": (0, lambda r: r["target_turn"].update(question=" "),
                              "field 'target_turn.question' is empty"),
    "unknown ambiguity": (0, lambda r: r.update(ambiguity="unclear"), "field 'ambiguity' is 'unclear'"),
    "no clarification": (1, lambda r: r.update(clarification_turn={}),
                         "field 'clarification_turn.question' is missing"),
    "no interpretations": (1, lambda r: r["clarification_turn"].update(answers=[]),
                           "field 'clarification_turn.answers' is empty"),
    "no org_ans": (1, lambda r: r["clarification_turn"]["answers"][1].pop("org_ans"),
                   "field 'clarification_turn.answers[1].org_ans' is missing"),
    "history not a list": (1, lambda r: r.update(history_turns={}), "field 'history_turns' must be a list"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_record_names_file_record_and_field(tmp_path, case):
    index, mutate, expected = MALFORMED[case]
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    mutate(data["data"][index])
    path = tmp_path / "abg.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataFormatError) as raised:
        load_abg_coqa(path)
    record_id = data["data"][index]["id"]
    assert str(raised.value).startswith(f"{path}: record {index} (id {record_id}): ")
    assert expected in str(raised.value)


def test_file_level_errors(tmp_path):
    path = tmp_path / "abg.json"
    path.write_text(json.dumps([]), encoding="utf-8")
    with pytest.raises(DataFormatError, match="must be an object with a 'data' list"):
        load_abg_coqa(path)
    path.write_text(json.dumps({"version": "1.0"}), encoding="utf-8")
    with pytest.raises(DataFormatError, match="top level: field 'data' is missing"):
        load_abg_coqa(path)
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    data["data"][3]["id"] = "storyone|3|2"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"record 3: field 'id' 'storyone\|3\|2' repeats record 0"):
        load_abg_coqa(path)
    data["data"][2].pop("id")
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"record 2: field 'id' is missing"):
        load_abg_coqa(path)


def test_missing_file_names_path_and_options(tmp_path):
    missing = tmp_path / "abg-coqa" / "coqa_abg_val.json"
    with pytest.raises(DataNotFoundError) as raised:
        load_abg_coqa(missing)
    for part in (str(missing), "dataset.path", "paths.data_dir", "CLARIFYLAB_DATA_DIR", "abg-coqa/coqa_abg_val.json"):
        assert part in str(raised.value)


def test_registry_splits_by_story():
    cfg = OmegaConf.create({"name": "abg_coqa", "path": str(FIXTURE), "eval_fraction": 0.5, "split_seed": 0,
                            "val_conversations": 0, "conversations": None, "subset_seed": 0,
                            "max_context_chars": None})
    train, test = load_dataset_split(cfg, "train", None), load_dataset_split(cfg, "test", None)
    assert sorted(e.id for e in train + test) == ["storyone|3|2", "storyone|4|2", "storytwo|1|1", "storytwo|2|1"]
    assert len({e.meta["conversation_id"] for e in train}) == len({e.meta["conversation_id"] for e in test}) == 1
    assert {e.meta["conversation_id"] for e in train}.isdisjoint({e.meta["conversation_id"] for e in test})


def test_a_passage_under_two_story_ids_is_one_conversation(tmp_path):
    # CoQA reuses passages under several story ids; grouping by id put one passage in train and in test.
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    copy = json.loads(json.dumps(data["data"][0]))
    copy["id"] = "astoryone|5|1"
    copy["story"] = " " + STORY_ONE.replace(" a red", "  A red") + "\n"   # same text up to case and spacing
    data["data"].append(copy)
    path = tmp_path / "abg.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    loaded = load_abg_coqa(path)
    assert {e.id: e.meta["conversation_id"] for e in loaded} == {
        "storyone|3|2": "astoryone", "storyone|4|2": "astoryone", "astoryone|5|1": "astoryone",
        "storytwo|2|1": "storytwo", "storytwo|1|1": "storytwo"}
    assert [e.meta["story_id"] for e in loaded] == ["storyone", "storyone", "storytwo", "storytwo", "astoryone"]
    assert loaded[0].meta["passage_key"] == loaded[4].meta["passage_key"] != loaded[2].meta["passage_key"]
    cfg = OmegaConf.create({"name": "abg_coqa", "path": str(path), "eval_fraction": 0.5, "split_seed": 0,
                            "val_conversations": 0, "conversations": None, "subset_seed": 0,
                            "max_context_chars": None})
    train, test = load_dataset_split(cfg, "train", None), load_dataset_split(cfg, "test", None)
    assert sorted([len(train), len(test)]) == [2, 3]                 # 2 conversations: storytwo | both storyones
    assert {e.meta["passage_key"] for e in train}.isdisjoint({e.meta["passage_key"] for e in test})


# --- the real copy ------------------------------------------------------------------------------------

needs_real_copy = pytest.mark.skipif(not REAL_FILE.is_file(), reason=f"Abg-CoQA not found at {REAL_FILE} "
                                     "(set CLARIFYLAB_DATA_DIR to the shared data folder)")


@pytest.mark.data
@needs_real_copy
def test_real_copy_counts():
    loaded = load_abg_coqa(REAL_FILE)
    assert len(loaded) == 1092
    clarify = [e for e in loaded if e.action is Action.CLARIFY]
    assert len(clarify) == 130
    assert sum(len(e.clarifications) for e in clarify) == 266
    assert all(e.goal == [c.answer for c in e.clarifications] for e in clarify)
    assert len({e.meta["story_id"] for e in loaded}) == 500
    assert len({e.meta["conversation_id"] for e in loaded}) == len({e.meta["passage_key"] for e in loaded}) == 495


@pytest.mark.data
@needs_real_copy
def test_real_copy_split_sizes_match_the_config_comments():
    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "dataset" / "abg_coqa.yaml")
    cfg.path = str(REAL_FILE)
    sizes = {split: load_dataset_split(cfg, split, None) for split in ("train", "validation", "test")}
    assert {k: (len({e.meta["conversation_id"] for e in v}), len(v), sum(e.action is Action.CLARIFY for e in v))
            for k, v in sizes.items()} == {"train": (376, 828, 92), "validation": (20, 49, 10), "test": (99, 215, 28)}
    for n, count in ((50, 92), (100, 200), (250, 556)):
        cfg.conversations = n
        assert len(load_dataset_split(cfg, "train", None)) == count


@pytest.mark.data
@needs_real_copy
def test_real_splits_share_no_passage():
    # Split by story id, 2 test passages were also in train (and 1 validation passage): 5 CoQA passages repeat.
    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "dataset" / "abg_coqa.yaml")
    cfg.path = str(REAL_FILE)
    passages = {split: {" ".join(e.context.lower().split()) for e in load_dataset_split(cfg, split, None)}
                for split in ("train", "validation", "test")}
    assert (len(passages["train"]), len(passages["validation"]), len(passages["test"])) == (376, 20, 99)
    assert passages["train"].isdisjoint(passages["test"]) and passages["validation"].isdisjoint(passages["test"])
    assert passages["train"].isdisjoint(passages["validation"])
