"""The data model: validation, JSONL round trip, errors that name file and line, HF datasets round trip."""

import json

import pytest

from clarifylab.data.hf import from_hf_dataset, to_hf_dataset
from clarifylab.data.jsonl import read_examples, write_examples
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.errors import DataFormatError, DataNotFoundError


def make_examples() -> list[Example]:
    answer = Example(
        id="t0-q0", task="synthetic_tables", context="| Entity | 2020 |\n| Acme | 1.5 |",
        history=[Turn("user", "What was Acme's revenue in 2020?")], response="1.5", action=Action.ANSWER,
        goal=["1.5"], meta={"split": "train", "kind": "lookup"},
    )
    clarify = Example(
        id="t0-q1", task="synthetic_tables", context="ctx",
        history=[Turn("user", "How much?"), Turn("assistant", "1.5"), Turn("user", "And Acme's revenue?")],
        response="Which year do you mean: 2020 or 2021?", action="clarify", goal=["2.5"],
        clarifications=[Clarification("2021.", "2.5"), Clarification("2020.", "1.5")],
        meta={"removed_slot": "year", "values": [1, 2.5, None]},
    )
    return [answer, clarify]


def test_action_other_and_coercion():
    examples = make_examples()
    assert examples[1].action is Action.CLARIFY
    assert Action.CLARIFY.other() is Action.ANSWER and Action.ANSWER.other() is Action.CLARIFY


def test_example_validation_errors():
    with pytest.raises(ValueError, match="must end with a user turn"):
        Example("x", "t", "", [Turn("assistant", "hi")], "r", Action.ANSWER, ["g"])
    with pytest.raises(ValueError, match="needs at least one clarification"):
        Example("x", "t", "", [Turn("user", "q")], "r?", Action.CLARIFY, ["g"])
    with pytest.raises(ValueError, match="Turn.role"):
        Turn("system", "no")
    with pytest.raises(ValueError):
        Example("x", "t", "", [Turn("user", "q")], "r", "maybe", ["g"])


def test_jsonl_round_trip_is_lossless(tmp_path):
    examples = make_examples()
    path = tmp_path / "sub" / "examples.jsonl"
    assert write_examples(path, examples) == 2
    assert read_examples(path) == examples
    # the file is plain JSONL with the action as a string
    first = json.loads(path.read_text().splitlines()[1])
    assert first["action"] == "clarify" and first["clarifications"][0] == {"reply": "2021.", "answer": "2.5"}


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(make_examples()[0].to_dict())
    path.write_text(good + "\n\n" + '{"id": "x", "task": ' + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:3: not valid JSON"):
        read_examples(path)
    record = make_examples()[0].to_dict()
    del record["goal"]
    path.write_text(good + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2: not a valid Example: missing field\(s\) \['goal'\]"):
        read_examples(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1: expected a JSON object"):
        read_examples(path)


def test_missing_jsonl_says_how_to_build_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="generate.py"):
        read_examples(tmp_path / "nope.jsonl")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "examples.jsonl"
    write_examples(path, make_examples())
    before = path.read_bytes()

    def broken():
        yield make_examples()[0]
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_examples(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["examples.jsonl"]  # no temp file left behind


def test_hf_dataset_round_trip_and_messages():
    examples = make_examples()
    dataset = to_hf_dataset(examples)
    assert len(dataset) == 2
    assert from_hf_dataset(dataset) == examples
    messages = dataset[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert messages[-3]["content"] == "Which year do you mean: 2020 or 2021?"
    assert messages[-2]["content"] == "2021." and messages[-1]["content"] == "2.5"
