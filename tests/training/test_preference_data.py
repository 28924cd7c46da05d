"""PreferencePair records (JSONL round trip, errors naming file and line), pair tokenization (only the
continuations' assistant tokens are scored), collation and the pairs DataModule."""

from __future__ import annotations

import json

import pytest
import torch

from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError, DataFormatError, DataNotFoundError
from clarifylab.models.tiny import IM_END, build_tiny_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.preference_data import (
    PreferenceBatch,
    PreferenceCollator,
    PreferencePair,
    gold_vs_other_action_pairs,
    read_pairs,
    tokenize_pair,
    write_pairs,
)

PROMPT = [
    {"role": "system", "content": "Answer the question about the table."},
    {"role": "user", "content": "What is the revenue in 2020?"},
    {"role": "assistant", "content": "The revenue is 4"},  # an earlier exchange: context, never scored
    {"role": "user", "content": "What is the revenue?"},
]
CHOSEN = [
    {"role": "assistant", "content": "Which year do you mean?"},
    {"role": "user", "content": "2021"},
    {"role": "assistant", "content": "The revenue is 5.2"},
]
REJECTED = [{"role": "assistant", "content": "The revenue is 4"}]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def pair(pair_id: str = "p0", **changes) -> PreferencePair:
    fields = {"id": pair_id, "prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED,
              "meta": {"action": "clarify", "example_id": "e0"}}
    fields.update(changes)
    return PreferencePair(**fields)


def scored_ids(feature: dict[str, list[int]]) -> list[int]:
    return [token for token, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE_INDEX]


def ids(tokenizer, *messages: dict[str, str]) -> list[int]:
    """Token ids of each message's ``content<|im_end|>``, concatenated."""
    return [t for m in messages for t in tokenizer(m["content"] + IM_END, add_special_tokens=False)["input_ids"]]


def test_jsonl_round_trip(tmp_path):
    pairs = [pair("a"), pair("b", rejected=CHOSEN, chosen=REJECTED, meta={})]
    assert write_pairs(tmp_path / "pairs.jsonl", pairs) == 2
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs
    assert pairs[0].gold_action.value == "clarify" and pairs[1].gold_action is None


def test_bad_files_fail_naming_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps(pair("a").to_dict())
    cases = {
        "{not json": "pairs.jsonl:2: not valid JSON",
        "[1, 2]": "pairs.jsonl:2: expected a JSON object",
        json.dumps({**pair("b").to_dict(), "chosen": [{"role": "user", "content": "x"}]}):
            "pairs.jsonl:2: not a valid preference pair: pair 'b' chosen must start and end with an assistant",
        json.dumps({**pair("b").to_dict(), "prompt": PROMPT[:3]}): "pairs.jsonl:2: .*must end with the user turn",
        json.dumps({**pair("b").to_dict(), "extra": 1}): r"pairs.jsonl:2: .*unknown field\(s\) \['extra'\]",
        good: "pairs.jsonl:2: pair id 'a' already used on line 1",
    }
    for line, message in cases.items():
        path.write_text(good + "\n" + line + "\n")
        with pytest.raises(DataFormatError, match=message):
            read_pairs(path)
    with pytest.raises(DataNotFoundError, match="trainer.pairs_path"):
        read_pairs(tmp_path / "absent.jsonl")


def test_only_the_continuations_assistant_tokens_are_scored_against_a_shared_prompt(tokenizer):
    tokenized = tokenize_pair(pair(), tokenizer, max_length=256)
    chosen, rejected = tokenized.chosen, tokenized.rejected
    # The prompt's assistant turn and the continuation's user turn are context; the end-of-turn tokens are scored.
    assert scored_ids(chosen) == ids(tokenizer, CHOSEN[0], CHOSEN[2])
    assert scored_ids(rejected) == ids(tokenizer, REJECTED[0])
    assert len(scored_ids(chosen)) == 7 + 7  # "which year do you mean ?" / "the revenue is 5 . 2", + <|im_end|> each
    first_scored = chosen["labels"].index(next(label for label in chosen["labels"] if label != IGNORE_INDEX))
    assert first_scored == rejected["labels"].index(next(lab for lab in rejected["labels"] if lab != IGNORE_INDEX))
    assert chosen["input_ids"][:first_scored] == rejected["input_ids"][:first_scored]  # the same prompt tokens
    assert tokenize_pair(pair(), tokenizer, max_length=40, truncation="drop") is None


def test_collator_pads_both_sides_to_one_length_by_position(tokenizer):
    items = [tokenize_pair(pair("a"), tokenizer, 256), tokenize_pair(pair("b", chosen=REJECTED), tokenizer, 256)]
    batch = PreferenceCollator(pad_token_id=tokenizer.pad_token_id)(items)
    assert isinstance(batch, PreferenceBatch) and batch.ids == ["a", "b"] and len(batch) == 2
    assert batch.chosen["input_ids"].shape == batch.rejected["input_ids"].shape
    longest = len(items[0].chosen["input_ids"])
    assert batch.chosen["input_ids"].shape == (2, longest)
    short_rejected, short_chosen = items[0].rejected["labels"], items[1].chosen["labels"]
    assert batch.rejected["labels"][0, :len(short_rejected)].tolist() == short_rejected
    assert batch.chosen["labels"][1, :len(short_chosen)].tolist() == short_chosen
    row = batch.rejected["attention_mask"][0].tolist()
    assert row == [1] * len(items[0].rejected["input_ids"]) + [0] * (longest - len(items[0].rejected["input_ids"]))
    moved = batch.to(torch.device("cpu"))
    assert moved.ids == batch.ids and moved.ref_chosen_logps is None


def test_gold_vs_other_action_pairs():
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 1, "test": 1})
    examples = corpus["train"]
    pairs = gold_vs_other_action_pairs(examples, {e.id: f"reply {e.id}" for e in examples})
    for made, example in zip(pairs, examples):
        assert made.id == example.id and made.prompt[-1]["content"] == example.history[-1].content
        assert made.chosen == [{"role": "assistant", "content": example.response}]
        assert made.rejected == [{"role": "assistant", "content": f"reply {example.id}"}]
        assert made.meta["action"] == example.action.value != made.meta["rejected_action"]
    with pytest.raises(ConfigError, match="2 rejected replies for 4 examples"):
        gold_vs_other_action_pairs(examples, ["a", "b"])


def test_datamodule_yields_every_pair_once_per_epoch_and_reference_loaders_in_order(tokenizer):
    from clarifylab.training.preference_datamodule import PreferenceDataModule

    pairs = [pair(f"p{i}", rejected=[{"role": "assistant", "content": "the revenue is " + str(i)}]) for i in range(5)]
    dm = PreferenceDataModule(pairs, pairs[:2], tokenizer, batch_size=2, eval_batch_size=4, max_length=256, seed=1)
    batches = list(dm.train_dataloader())
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert sorted(pair_id for batch in batches for pair_id in batch.ids) == [f"p{i}" for i in range(5)]
    assert [pair_id for batch in batches for pair_id in batch.ids] != [f"p{i}" for i in range(5)]  # shuffled
    reference = dm.reference_dataloaders()
    assert [b.ids for b in reference["train"]] == [["p0", "p1", "p2", "p3"], ["p4"]]
    assert [b.ids for b in reference["val"]] == [["p0", "p1"]]
    with pytest.raises(ConfigError, match="no training pairs"):
        PreferenceDataModule([], [], tokenizer, batch_size=2, eval_batch_size=2, max_length=256)
