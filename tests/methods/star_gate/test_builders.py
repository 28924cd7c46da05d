"""generate.py task=stargate_oracle / stargate_personas with a scripted teacher: native output layout, resume after a
kill without duplicate calls, refusal of changed settings, persona parsing, and the seeded PRODIGy draws."""

from __future__ import annotations

import json

import pytest

from clarifylab.data.loaders.stargate import load_stargate
from clarifylab.errors import ConfigError
from clarifylab.methods.star_gate.builders import (
    generate_stargate_oracle,
    generate_stargate_personas,
    parse_persona,
    seed_pair,
)


class Teacher:
    name, model_id = "scripted", "scripted-teacher"

    def __init__(self, fail_after=None, reply=None):
        self.batches, self.fail_after, self.reply = [], fail_after, reply

    def complete(self, batch, params):
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches.append((list(batch), params))
        return [self.reply(m) if self.reply else f"answer for {m[-1]['content']}" for m in batch]


def test_oracle_build_resumes_and_writes_the_native_layout(stargate_dir, tmp_path):
    out = tmp_path / "oracle"
    paths = {"cache_dir": str(tmp_path / "cache")}
    with pytest.raises(KeyboardInterrupt):
        generate_stargate_oracle(str(out), str(stargate_dir), "A", None, paths, batch_size=2,
                                 generator=Teacher(fail_after=2))
    assert len((out / "A.oracle.progress.jsonl").read_text().splitlines()) == 4  # two chunks survived the kill
    teacher = Teacher()
    manifest = generate_stargate_oracle(str(out), str(stargate_dir), "A", None, paths, batch_size=2,
                                        generator=teacher)
    assert sum(len(batch) for batch, _ in teacher.batches) == 2  # only the remaining 2 of 6 pairs
    system = teacher.batches[0][0][0][0]
    assert system["role"] == "system" and "he has two companies" in system["content"]  # the oracle sees the persona
    params = teacher.batches[0][1]
    assert (params.max_new_tokens, params.temperature) == (300, 0.0)
    assert manifest["counts"] == {"pairs": 6, "answered": 6, "empty": 0, "logged_outside_plan": 0}
    answers = json.loads((out / "A.json").read_text())
    assert answers["prompt-2 persona-1"] == ["answer for My name is bob. what is the average price"]
    examples = load_stargate(stargate_dir, "A", oracle_dir=str(out))
    assert examples[5].response == "answer for My name is bob. what is the average price"
    with pytest.raises(ConfigError, match="other settings"):
        generate_stargate_oracle(str(out), str(stargate_dir), "A", None, paths, max_new_tokens=10, generator=Teacher())


def test_persona_build_few_shot_from_two_prodigy_characters(tmp_path):
    prodigy = tmp_path / "characters.json"
    prodigy.write_text(json.dumps({f"u{k}": {"gender": "female", "mbti": "introvert", "biography": [f"I am seed {k}."]}
                                   for k in range(5)}))
    replies = iter(["1. Dana Ruiz, 41, a teacher.\n2. Runs marathons.", "no name here, sorry", "Eli Moss, 25, chef"])
    teacher = Teacher(reply=lambda m: next(replies))
    out = tmp_path / "personas"
    manifest = generate_stargate_personas(str(out), str(prodigy), "A", 3, None, {"cache_dir": str(tmp_path)},
                                          generator=teacher)
    prompt = teacher.batches[0][0][0][0]["content"]
    assert prompt.count("I am seed") == 2 and teacher.batches[0][1].temperature == 1.4
    assert manifest["counts"] == {"planned": 3, "written": 2, "unparsable": 1}
    assert json.loads((out / "A_NAMES.json").read_text()) == ["Dana Ruiz", "Eli Moss"]
    assert json.loads((out / "A.json").read_text())[0].startswith("1. Dana Ruiz")
    assert seed_pair(["a", "b", "c", "d"], 0, "A", 1) == seed_pair(["a", "b", "c", "d"], 0, "A", 1)
    assert len(set(seed_pair(["a", "b", "c", "d"], 0, "A", 1))) == 2


def test_parse_persona():
    assert parse_persona("1. **Ann Lee**, 30, nurse\n2. x") == ("1. **Ann Lee**, 30, nurse\n2. x", "Ann Lee")
    assert parse_persona("") is None and parse_persona("1. , 30") is None
