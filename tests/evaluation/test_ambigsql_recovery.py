"""AmbigSQL recovery check (ACT App. C.2): exact execution-match rates without and with the clarification
turns from a scripted SQL writer, the two prompts, the report files, and generate.py's task=ambigsql_recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from clarifylab.backends.base import SamplingParams
from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.jsonl import write_examples
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.evaluation.ambigsql_recovery import (RECOVERY_INSTRUCTION, recovery_prompts, recovery_rates,
                                                     run_recovery_check)

register_resolvers()

# (ambiguous request, clarifying question, original request, gold SQL, db, kind)
PAIRS = [
    ("Tell me about the teachers.", "What do you want to know?", "How many teachers are there?",
     "SELECT count(*) FROM teacher", "school", "information"),
    ("List the math teachers.", "In what order?", "List the names of math teachers from the oldest to the youngest.",
     "SELECT name FROM teacher WHERE subject = 'math' ORDER BY age DESC", "school", "presentation"),
    ("Which one is heavy?", "Which animals do you mean?", "What is the name of the heaviest animal?",
     "SELECT name FROM animal ORDER BY weight DESC LIMIT 1", "zoo", "population"),
    ("What species?", "Of which animals?", "Show the species of every animal.", "SELECT species FROM animal", "zoo",
     "population"),
]


@pytest.fixture()
def spider(tmp_path, build_spider_tree) -> Path:
    return build_spider_tree(tmp_path / "data" / "spider")


def clarify_examples() -> list[Example]:
    return [Example(id=f"p{i}-clarify", task="ambigsql", context=f"Schema of {db}", history=[Turn("user", ambiguous)],
                    response=question, action=Action.CLARIFY, goal=[sql], clarifications=[Clarification(original, sql)],
                    meta={"db_id": db, "ambiguity_type": kind, "conversation_id": f"p{i}"})
            for i, (ambiguous, question, original, sql, db, kind) in enumerate(PAIRS)]


class ScriptedWriter:
    """Given only the ambiguous request: pairs 0 (as a fenced block) and 3 right, a wrong query for 1, prose for 2
    (2/4). With the clarification turns: the gold SQL with chatter around it, except for pair 1 the same rows in
    the opposite order, which scores 0 because the gold query orders (3/4)."""

    name = "scripted"
    model_id = "scripted-writer"

    def __init__(self) -> None:
        self.batches: list[list[list[dict]]] = []

    def complete(self, batch, params):
        self.batches.append([list(c) for c in batch])
        replies = []
        for conversation in batch:
            users = [m["content"] for m in conversation if m["role"] == "user"]
            pair = next(i for i, p in enumerate(PAIRS) if p[0] == users[0])
            sql = PAIRS[pair][3]
            if len(users) == 1:
                replies.append({0: f"```sql\n{sql}\n```", 1: "SELECT name FROM teacher", 2: "I am not sure.",
                                3: sql}[pair])
            elif pair == 1:
                replies.append("SELECT name FROM teacher WHERE subject = 'math' ORDER BY age ASC")
            else:
                replies.append(f"Here you go: {sql};")
        return replies


def test_prompts_without_and_with_the_clarification_turns():
    example = clarify_examples()[2]
    ambiguous, clarified = recovery_prompts(example)
    system = {"role": "system", "content": f"{RECOVERY_INSTRUCTION}\n\nSchema of zoo"}
    assert ambiguous == [system, {"role": "user", "content": "Which one is heavy?"}]
    assert clarified == [system, {"role": "user", "content": "Which one is heavy?"},
                         {"role": "assistant", "content": "Which animals do you mean?"},
                         {"role": "user", "content": "What is the name of the heaviest animal?"}]
    answer = Example("a", "ambigsql", "", [Turn("user", "x")], "SELECT 1", Action.ANSWER, ["SELECT 1"])
    with pytest.raises(DataFormatError, match="needs clarify Examples"):
        recovery_prompts(answer)


def test_rates_are_exact_on_a_scripted_writer(spider):
    writer = ScriptedWriter()
    summary, rows = recovery_rates(clarify_examples(), writer, SamplingParams(max_new_tokens=32), spider)
    assert len(writer.batches) == 1 and len(writer.batches[0]) == 8  # both conditions in one call
    assert [r["ambiguous_only"]["score"] for r in rows] == [1.0, 0.0, 0.0, 1.0]
    assert [r["with_clarification"]["score"] for r in rows] == [1.0, 0.0, 1.0, 1.0]
    assert rows[1]["with_clarification"]["reason"] == "same rows in a different order (gold orders its rows)"
    assert rows[2]["ambiguous_only"]["reason"].startswith("predicted query rejected")
    assert rows[0]["ambiguous_only"]["sql"] == "SELECT count(*) FROM teacher"
    assert summary == {
        "n": 4, "ambiguous_only": 0.5, "with_clarification": 0.75, "gap": 0.25,
        "by_kind": {"information": {"n": 1, "ambiguous_only": 1.0, "with_clarification": 1.0, "gap": 0.0},
                    "population": {"n": 2, "ambiguous_only": 0.5, "with_clarification": 1.0, "gap": 0.5},
                    "presentation": {"n": 1, "ambiguous_only": 0.0, "with_clarification": 0.0, "gap": 0.0}}}


def _write_build(build_dir: Path) -> None:
    examples = []
    for example in clarify_examples():
        examples.append(example)
        examples.append(Example(example.id.replace("clarify", "answer"), "ambigsql", example.context,
                                [Turn("user", example.clarifications[0].reply)], example.goal[0], Action.ANSWER,
                                list(example.goal), meta=dict(example.meta)))
    write_examples(build_dir / "test.jsonl", examples[:4])
    write_examples(build_dir / "train.jsonl", examples[4:])


def test_run_writes_the_report_and_predictions(spider, tmp_path):
    build_dir = tmp_path / "build"
    _write_build(build_dir)
    out = tmp_path / "report" / "scripted.json"
    report = run_recovery_check(str(out), str(build_dir), str(spider), {"cache_dir": str(tmp_path / "cache")},
                                splits=["test", "train"], model=ScriptedWriter())
    assert (report["n"], report["ambiguous_only"], report["with_clarification"]) == (4, 0.5, 0.75)
    assert json.loads(out.read_text())["with_clarification"] == 0.75
    assert report["backend"] == "scripted-writer" and report["usage"]["policy"]["conversations"] == 8
    predictions = [json.loads(line) for line in (out.parent / "scripted.predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [f"p{i}-clarify" for i in range(4)]
    only_test = run_recovery_check(str(out), str(build_dir), str(spider), {"cache_dir": str(tmp_path)},
                                   splits=["test"], max_pairs=1, model=ScriptedWriter())
    assert (only_test["n"], only_test["ambiguous_only"], only_test["with_clarification"]) == (1, 1.0, 1.0)
    with pytest.raises(ConfigError, match="needs a model"):
        run_recovery_check(str(out), str(build_dir), str(spider), {"cache_dir": str(tmp_path)}, backend={"name": "x"})


def test_generate_task_runs_the_check_through_the_tiny_backend(spider, tmp_path):
    build_dir = tmp_path / "build"
    _write_build(build_dir)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("generate", overrides=["task=ambigsql_recovery", "teacher@task.backend=tiny",
                                             f"paths.data_dir={spider.parent}", f"paths.cache_dir={tmp_path / 'cache'}",
                                             f"task.build_dir={build_dir}", "task.splits=[test,train]",
                                             "task.max_new_tokens=8"])
    report = instantiate(cfg.task)
    assert report["n"] == 4 and report["backend"] == "tiny:seed=0"
    assert 0.0 <= report["ambiguous_only"] <= 1.0 and 0.0 <= report["with_clarification"] <= 1.0
    assert json.loads((build_dir / "recovery" / "tiny.json").read_text())["n"] == 4
