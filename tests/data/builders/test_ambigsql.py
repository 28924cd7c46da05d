"""AmbigSQL build (ACT App. C.1) on the spider_small fixture with a scripted teacher: planning and the
missing-database count, the gold-SQL execution filter, exact pair Examples and 50/50 balance, drop reasons,
splits, the execution-match heuristic on the result, the dataset registry, resuming after a crash or a
truncated log line, and generate.py's task=ambigsql through the tiny model and its call cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.jsonl import read_examples
from clarifylab.data.loaders.spider import linearize_schema, read_spider_schemas
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.data.builders.ambigsql import generate_ambigsql, plan_requests, read_sources, split_of
from clarifylab.data.builders.ambigsql_kinds import choose_kind
from clarifylab.data.builders.ambigsql_log import append_records, recover_log

register_resolvers()

# Requests on present databases, in file order (ghost has no database; dev-00004's gold SQL names a missing column).
PRESENT = ["train_spider_syn-00000", "train_spider_syn-00002", "dev-00000", "dev-00001", "dev-00003", "dev-00004",
           "dev-00005"]
KEPT = [i for i in PRESENT if i != "dev-00004"]


@pytest.fixture()
def spider(tmp_path, build_spider_tree) -> Path:
    return build_spider_tree(tmp_path / "data" / "spider")


class ScriptedTeacher:
    """Rewrites by lookup on the clear request (default: "Something about <last word>" / a fixed question);
    answers both prompt layouts; records every batch; raises on call ``fail_after + 1`` (a crash)."""

    name = "scripted"
    model_id = "scripted-teacher"

    def __init__(self, rewrites: dict[str, tuple[str, str]] | None = None, fail_after: int | None = None) -> None:
        self.rewrites = rewrites or {}
        self.fail_after = fail_after
        self.calls: list[list[list[dict]]] = []

    def complete(self, batch, params):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("teacher crashed")
        self.calls.append([list(conversation) for conversation in batch])
        replies = []
        for conversation in batch:
            fields = dict(line.split(": ", 1) for line in conversation[-1]["content"].splitlines() if ": " in line)
            clear = fields["Clear request"]
            ambiguous, question = self.rewrites.get(clear, (f"Something about {clear.split()[-1]}",
                                                            "What exactly do you need?"))
            if "Reply with exactly two lines" in conversation[0]["content"]:
                replies.append(f"Ambiguous request: {ambiguous}\nClarifying question: {question}")
            else:
                replies.append(question if "Ambiguous request" in fields else ambiguous)
        return replies

    def prompted_clear_requests(self) -> list[str]:
        return [conversation[-1]["content"].split("Clear request: ", 1)[1].split("\n")[0]
                for batch in self.calls for conversation in batch]


def build(spider: Path, out: Path, teacher, **options):
    return generate_ambigsql(str(out), str(spider), None, {"cache_dir": str(out.parent / "cache")}, generator=teacher,
                             **options)


def split_files(out: Path) -> dict[str, str]:
    return {split: (out / f"{split}.jsonl").read_text() for split in ("train", "validation", "test")}


# --- plan ---------------------------------------------------------------------------------------------


def test_plan_skips_missing_databases_and_orders_by_seed(spider):
    requests, _ = read_sources(spider, ["train_spider_syn.json", "dev.json"])
    assert len(requests) == 9
    in_file_order, missing = plan_requests(requests, spider, order="file")
    assert [r.id for r in in_file_order] == PRESENT
    assert dict(missing) == {"ghost": 2}
    seeded, _ = plan_requests(requests, spider, order="seeded", seed=0)
    assert sorted(r.id for r in seeded) == sorted(PRESENT) and [r.id for r in seeded] != PRESENT
    assert [r.id for r in plan_requests(requests, spider, seed=0, max_items=3)[0]] == [r.id for r in seeded[:3]]
    assert [r.id for r in plan_requests(requests, spider, seed=1)[0]] != [r.id for r in seeded]
    with pytest.raises(ConfigError, match="task.max_items"):
        plan_requests(requests, spider, max_items=0)
    with pytest.raises(ConfigError, match="task.order"):
        plan_requests(requests, spider, order="random")


# --- build --------------------------------------------------------------------------------------------


def test_build_counts_filter_and_balance(spider, tmp_path):
    teacher = ScriptedTeacher()
    manifest = build(spider, tmp_path / "out", teacher)
    counts = manifest["counts"]
    assert {k: counts[k] for k in ("source_items", "missing_db_skipped", "missing_db_by_db", "planned", "processed",
                                   "executes", "kept", "dropped")} == {
        "source_items": 9, "missing_db_skipped": 2, "missing_db_by_db": {"ghost": 2}, "planned": 7, "processed": 7,
        "executes": 6, "kept": 6, "dropped": {"gold_sql_fails": 1}}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"] == counts
    # One chunk (batch_size 8): one call for the requests, one for the questions; the failing gold SQL never
    # reaches the teacher.
    assert [len(batch) for batch in teacher.calls] == [6, 6]
    assert "What is the average height of the animals?" not in teacher.prompted_clear_requests()
    examples = {split: read_examples(tmp_path / "out" / f"{split}.jsonl") for split in ("train", "validation", "test")}
    pairs = [e for split in examples.values() for e in split]
    assert len(pairs) == 12 and len({e.id for e in pairs}) == 12
    assert {e.meta["conversation_id"] for e in pairs} == set(KEPT)
    for split, items in examples.items():
        clarify = [e for e in items if e.action is Action.CLARIFY]
        assert len(clarify) * 2 == len(items) == 2 * counts["splits"][split]["pairs"]
        assert [e.id for e in items] == [f"{e.meta['conversation_id']}-{kind}" for e in clarify
                                         for kind in ("clarify", "answer")]
        assert {e.meta["split"] for e in items} <= {split}
    kinds = {e.meta["conversation_id"]: e.meta["ambiguity_type"] for e in pairs}
    assert kinds["dev-00001"] == kinds["dev-00003"] == "presentation"  # ORDER BY ... / ORDER BY ... LIMIT 1
    for item, kind in kinds.items():
        if item not in ("dev-00001", "dev-00003"):
            assert kind == choose_kind(item, "SELECT 1").value != "presentation"
    assert sum(counts["kinds"].values()) == 6
    gold = next(r for r in recover_log(tmp_path / "out" / "progress.jsonl") if r["id"] == "dev-00004")
    assert gold["status"] == "dropped" and "no such column: height" in gold["detail"]


def test_pair_examples_are_exact(spider, tmp_path):
    build(spider, tmp_path / "out", ScriptedTeacher({"How many teachers are there?": ("Tell me about the teachers.",
                                                                                      "What do you want to know?")}))
    pairs = {e.id: e for split in ("train", "validation", "test")
             for e in read_examples(tmp_path / "out" / f"{split}.jsonl")}
    clarify, answer = pairs["dev-00000-clarify"], pairs["dev-00000-answer"]
    context = linearize_schema(read_spider_schemas(spider / "tables.json")["school"])
    split = clarify.meta["split"]
    meta = {"db_id": "school", "ambiguity_type": choose_kind("dev-00000", "SELECT count(*) FROM teacher").value,
            "original_question": "How many teachers are there?", "ambiguous_request": "Tell me about the teachers.",
            "query": "SELECT count(*) FROM teacher", "source": "dev.json", "source_index": 0,
            "conversation_id": "dev-00000", "split": split, "gold_rows": 1}
    assert clarify == Example(
        id="dev-00000-clarify", task="ambigsql", context=context, history=[Turn("user", "Tell me about the teachers.")],
        response="What do you want to know?", action=Action.CLARIFY, goal=["SELECT count(*) FROM teacher"],
        clarifications=[Clarification("How many teachers are there?", "SELECT count(*) FROM teacher")],
        meta={**meta, "variant": "ambiguous"})
    assert answer == Example(
        id="dev-00000-answer", task="ambigsql", context=context, history=[Turn("user", "How many teachers are there?")],
        response="SELECT count(*) FROM teacher", action=Action.ANSWER, goal=["SELECT count(*) FROM teacher"],
        meta={**meta, "variant": "original"})
    assert split == split_of({"db_id": "school", "id": "dev-00000"})


def test_drop_reasons_are_counted(spider, tmp_path):
    rewrites = {
        "How many teachers are there?": ("how many teachers are there", "Which?"),                      # identical
        "Show the species of every animal.": ("Species of every animal, please.", "Which?"),             # nothing out
        "What is the name of the heaviest animal?": ("Name an animal.", "Name an animal"),               # repeats
        "Which rooms hold classes of more than 20 students?": ("Which rooms?", "Big classes only."),     # no '?'
        "List the names of math teachers from the oldest to the youngest.": ("", "Which?"),              # empty
    }
    teacher = ScriptedTeacher(rewrites)
    counts = build(spider, tmp_path / "out", teacher)["counts"]
    assert counts["kept"] == 1 and counts["executes"] == 6
    assert counts["dropped"] == {"empty": 1, "gold_sql_fails": 1, "identical_to_original": 1, "not_a_question": 1,
                                 "nothing_left_out": 1, "question_repeats_request": 1}
    # Requests dropped at the first step get no question prompt: 6 request prompts, then 3 question prompts.
    assert [len(batch) for batch in teacher.calls] == [6, 3]
    assert counts["splits"]["train"]["pairs"] + counts["splits"]["validation"]["pairs"] + \
        counts["splits"]["test"]["pairs"] == 1


def test_joint_mode_makes_the_same_examples_in_one_call(spider, tmp_path):
    two_step = ScriptedTeacher()
    build(spider, tmp_path / "a", two_step)
    joint = ScriptedTeacher()
    manifest = build(spider, tmp_path / "b", joint, mode="joint")
    assert len(joint.calls) == 1 and len(two_step.calls) == 2
    assert split_files(tmp_path / "a") == split_files(tmp_path / "b")
    assert manifest["params"]["mode"] == "joint"
    with pytest.raises(ConfigError, match="task.mode"):
        build(spider, tmp_path / "c", ScriptedTeacher(), mode="both")


def test_splits_by_database_or_item(spider, tmp_path):
    records = [{"id": f"x-{i}", "db_id": f"db{i % 5}"} for i in range(200)]
    by_db = {}
    for record in records:
        by_db.setdefault(record["db_id"], set()).add(split_of(record, "db"))
    assert all(len(splits) == 1 for splits in by_db.values())
    by_item = [split_of(r, "item", seed=0) for r in records]
    assert {s: by_item.count(s) for s in set(by_item)}.keys() == {"train", "validation", "test"}
    assert 20 < by_item.count("test") < 60 and 5 < by_item.count("validation") < 35
    assert {split_of(r, "item", test_fraction=1.0, validation_fraction=0.0) for r in records} == {"test"}
    with pytest.raises(ConfigError, match="sum to at most 1"):
        split_of(records[0], "db", validation_fraction=0.5, test_fraction=0.6)
    with pytest.raises(ConfigError, match="task.split_by"):
        split_of(records[0], "table")
    counts = build(spider, tmp_path / "out", ScriptedTeacher(), split_by="item", test_fraction=0.0,
                   validation_fraction=0.0)["counts"]
    assert counts["splits"]["train"] == {"pairs": 6, "clarify": 6, "answer": 6, "databases": 2}


def test_built_examples_score_with_the_execution_heuristic_and_load_through_the_registry(spider, tmp_path):
    from clarifylab.metrics.task_heuristics import heuristic_for, score_outcomes, score_turns

    out = tmp_path / "out"
    build(spider, out, ScriptedTeacher(), split_by="item", test_fraction=0.0, validation_fraction=0.0)
    cfg = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "ambigsql.yaml")
    cfg.dir = str(out)
    train = load_dataset_split(cfg, cfg.train_split)
    assert len(train) == 12 and {e.task for e in train} == {"ambigsql"}
    cfg.conversations = 2
    assert [e.action for e in load_dataset_split(cfg, "train")] == [Action.CLARIFY, Action.ANSWER] * 2
    data_dir = spider.parent  # the heuristic reads <data_dir>/spider/database/<db_id>/<db_id>.sqlite
    answers = [e for e in train if e.action is Action.ANSWER]
    clarify = [e for e in train if e.action is Action.CLARIFY]
    heuristic = heuristic_for("ambigsql", data_dir=data_dir)
    assert score_turns("ambigsql", [e.response for e in answers], answers, heuristic) == [1.0] * 6
    assert score_turns("ambigsql", [e.response for e in clarify], clarify, heuristic) == [0.0] * 6
    outcomes = [f"```sql\n{e.goal[0]}\n```" for e in clarify[:2]] + ["SELECT 1"]
    assert score_outcomes("ambigsql", outcomes, clarify[:3], [0, 0, 0], heuristic) == [1.0, 1.0, 0.0]


# --- resume -------------------------------------------------------------------------------------------


def test_recover_log_cuts_a_truncated_last_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    append_records(path, [{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    whole = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"id": "c", "n"')
    assert recover_log(path) == [{"id": "a", "n": 1}, {"id": "b", "n": 2}]
    assert path.read_bytes() == whole
    append_records(path, [{"id": "c", "n": 3}])
    assert [r["id"] for r in recover_log(path)] == ["a", "b", "c"]
    with path.open("ab") as handle:  # a complete JSON object without its newline is a cut write too
        handle.write(b'{"id": "d"}')
    assert [r["id"] for r in recover_log(path)] == ["a", "b", "c"] and path.read_bytes().endswith(b"3}\n")
    assert recover_log(tmp_path / "absent.jsonl") == []


def test_recover_log_refuses_a_broken_middle_line_and_keeps_first_of_repeated_ids(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"id": "a"}\n{"id": broken\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="in the middle of the progress log"):
        recover_log(path)
    path.write_text('{"id": "a", "v": 1}\n{"id": "a", "v": 2}\n', encoding="utf-8")
    assert recover_log(path) == [{"id": "a", "v": 1}]
    path.write_text('["no id"]\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="string 'id'"):
        recover_log(path)


def test_resume_after_a_teacher_crash_equals_an_uninterrupted_run(spider, tmp_path):
    build(spider, tmp_path / "whole", ScriptedTeacher(), batch_size=2)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="teacher crashed"):
        build(spider, out, ScriptedTeacher(fail_after=3), batch_size=2)  # chunk 1: 2 calls; chunk 2 dies mid-way
    logged = [r["id"] for r in recover_log(out / "progress.jsonl")]
    assert len(logged) == 2 and not (out / "manifest.json").exists()
    second = ScriptedTeacher()
    manifest = build(spider, out, second, batch_size=2)
    assert split_files(out) == split_files(tmp_path / "whole")
    ids = [json.loads(line)["id"] for line in (out / "progress.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 7
    prompted = set(second.prompted_clear_requests())
    originals = {r["id"]: r["original_question"] for r in recover_log(out / "progress.jsonl")}
    assert not prompted & {originals[i] for i in logged}  # logged requests are not sent again
    assert manifest["counts"]["processed"] == 7 and manifest["counts"]["kept"] == 6


def test_a_truncated_last_line_is_redone(spider, tmp_path):
    out = tmp_path / "out"
    build(spider, out, ScriptedTeacher(), batch_size=3)
    expected = split_files(out)
    log_path = out / "progress.jsonl"
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # killed while writing the last record
    for split in ("train", "validation", "test"):
        (out / f"{split}.jsonl").unlink()
    teacher = ScriptedTeacher()
    build(spider, out, teacher, batch_size=3)
    assert split_files(out) == expected
    assert len(log_path.read_text().splitlines()) == 7
    assert len(teacher.prompted_clear_requests()) in (1, 2)  # the cut request: its rewrite (+ question) again


def test_changed_settings_are_refused_and_a_finished_build_needs_no_teacher(spider, tmp_path):
    out = tmp_path / "out"
    build(spider, out, ScriptedTeacher())
    with pytest.raises(ConfigError, match=r"built with other settings \(options: .*'seed': 0.*'seed': 1"):
        build(spider, out, ScriptedTeacher(), seed=1)
    other = ScriptedTeacher()
    other.model_id = "another-teacher"
    with pytest.raises(ConfigError, match="teacher: 'scripted-teacher' -> 'another-teacher'"):
        build(spider, out, other)
    expected = split_files(out)
    manifest = generate_ambigsql(str(out), str(spider), None, {"cache_dir": str(tmp_path / "cache")})
    assert split_files(out) == expected and "usage" not in manifest
    with pytest.raises(ConfigError, match="teacher@task.teacher=smollm2"):
        generate_ambigsql(str(tmp_path / "new"), str(spider), {"name": "none"}, {"cache_dir": str(tmp_path)})


# --- generate.py --------------------------------------------------------------------------------------


def compose_task(tmp_path, spider, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("generate", overrides=["task=ambigsql", "teacher@task.teacher=tiny",
                                              f"paths.data_dir={spider.parent}",
                                              f"paths.cache_dir={tmp_path / 'cache'}", "task.max_new_tokens=8",
                                              *overrides])


def test_generate_task_through_the_tiny_teacher_is_cached_and_reproducible(spider, tmp_path):
    first = instantiate(compose_task(tmp_path, spider, f"task.out_dir={tmp_path / 'a'}",
                                     "task.require_question_mark=false").task)
    counts = first["counts"]
    assert (counts["planned"], counts["processed"], counts["executes"]) == (7, 7, 6)
    assert counts["kept"] + sum(counts["dropped"].values()) == 7
    assert first["usage"]["teacher"]["backend_calls"] >= 1
    assert (tmp_path / "cache" / "calls" / "teacher_tiny.sqlite").is_file()
    again = instantiate(compose_task(tmp_path, spider, f"task.out_dir={tmp_path / 'b'}",
                                     "task.require_question_mark=false").task)
    assert again["usage"]["teacher"]["backend_calls"] == 0  # every call served from the cache
    assert split_files(tmp_path / "a") == split_files(tmp_path / "b")
    assert again["counts"] == counts
