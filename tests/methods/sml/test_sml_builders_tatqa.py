"""The offline SML builders (task=sml_dialogues / q_priming) on TAT-QA problems: the trainer's problem source
(problems.load_problems), leaks dropped and counted, resume, the source in the fingerprint, and the configs;
hand-checked on tests/fixtures/tatqa_small.json with scripted student and teacher backends."""

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.jsonl import read_examples
from clarifylab.data.registry import load_dataset_split
from clarifylab.errors import ConfigError
from clarifylab.methods.sml.builders import generate_q_priming, generate_sml_dialogues
from clarifylab.schemas import validate_config
from sml_scripted import Scripted

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "tatqa_small.json"
# the fixture's problems (test_sml_tatqa_problems.py): q-a4, q-a5, q-b2, q-b3 have no span to shard: skipped
QUESTIONS = {"What was the revenue in 2019?": "q-a1",
             "What was the change in cost from 2018 to 2019?": "q-a2",
             "What was the change in cost as a percentage of 2018?": "q-a3",
             "In which year was revenue larger?": "q-a6",
             "What is the retail margin?": "q-b1"}
RIGHT = {"q-a1": "$1,200.5 million", "q-a2": "-550 thousand", "q-a3": "-220 percent", "q-a6": "2019",
         "q-b1": "12.5 percent"}  # replies the TAT-QA H scores as correct
GOLD = {"q-a1": "$ 1,200.5", "q-a2": "-550", "q-a3": "-220", "q-a6": "2019", "q-b1": "12.5"}  # problem.answer
PATHS = {"cache_dir": "unused"}


def tatqa_node(**overrides):
    node = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "tatqa.yaml")
    node.merge_with({"path": str(FIXTURE), **overrides})
    return node


def student(right_at=2):
    """Answers "It is 0.01." until its ``right_at``-th turn, then the right answer of the problem it is asked."""
    def reply(conversation):
        spoken = sum(m["role"] == "assistant" for m in conversation)
        return RIGHT[QUESTIONS[conversation[1]["content"]]] if spoken + 1 >= right_at else "It is 0.01."
    return Scripted(reply)


def problem_of(teacher_prompt) -> str:
    """The problem id behind a teacher prompt (its private solution names the question)."""
    return next(i for q, i in QUESTIONS.items() if f"The question is: {q}" in teacher_prompt[0]["content"])


LEAKY = {"q-a1", "q-a2"}
# leaks "It is <answer>." on q-a1 ($ 1,200.5) and q-a2 (-550); honest, number-free feedback elsewhere
leaky_teacher = Scripted(lambda c: f"It is {GOLD[problem_of(c)]}." if problem_of(c) in LEAKY else "Check the row.")


def test_sml_dialogues_on_tatqa_keep_drop_count_and_resume(tmp_path):
    out = tmp_path / "sml"
    first = student()
    counts = generate_sml_dialogues(str(out), tatqa_node(), student=None, paths=PATHS, splits=["all"],
                                    max_problems=2, backends=(first, leaky_teacher), batch_size=2)
    assert counts == {"all": {"dialogues": 2, "kept": 0, "dropped_leak": 2, "no_success": 0}}
    # resume: the two logged dialogues are not simulated again, the three new ones are
    again = student()
    generate_sml_dialogues(str(out), tatqa_node(), student=None, paths=PATHS, splits=["all"],
                           backends=(again, leaky_teacher), batch_size=2)
    assert sorted({QUESTIONS[c[1]["content"]] for c in again.seen}) == ["q-a3", "q-a6", "q-b1"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["all"] | {"replaced_by_turn": None} == {
        "problems": 5, "dialogues": 5, "kept": 3, "dropped_leak": 2, "no_success": 0,
        "leaking_teacher_messages": 2, "replaced_by_turn": None, "mean_student_turns_kept": 2.0}
    assert manifest["params"]["dataset"] == "tatqa" and manifest["params"]["source"]["path"] == str(FIXTURE)
    kept = {e.id: e for e in read_examples(out / "all.jsonl")}
    assert sorted(kept) == ["q-a3-s0", "q-a6-s0", "q-b1-s0"]
    for pid in ("q-a3", "q-a6", "q-b1"):
        example = kept[f"{pid}-s0"]
        question = next(q for q, i in QUESTIONS.items() if i == pid)
        assert example.task == "tatqa" and example.goal == [GOLD[pid]] and example.response == RIGHT[pid]
        assert [(t.role, t.content) for t in example.history] == [
            ("user", question), ("assistant", "It is 0.01."), ("user", "Check the row.")]
    assert "Revenue | $ 1,200.5 | $1,000.0" in kept["q-a3-s0"].context  # the table the student read
    # a finished build is not recomputed; another TAT-QA file or split plan is refused, not mixed in
    before = len(again.seen)
    generate_sml_dialogues(str(out), tatqa_node(), student=None, paths=PATHS, splits=["all"],
                           backends=(again, leaky_teacher))
    assert len(again.seen) == before
    with pytest.raises(ConfigError, match="source"):
        generate_sml_dialogues(str(out), tatqa_node(split_seed=1), student=None, paths=PATHS, splits=["all"],
                               backends=(again, leaky_teacher))
    # trainer=sft reads the build with dataset=ts_curriculum (any <split>.jsonl of Examples)
    sft_node = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "ts_curriculum.yaml")
    sft_node.merge_with({"dir": str(out)})
    assert [e.id for e in load_dataset_split(sft_node, "all")] == ["q-a3-s0", "q-a6-s0", "q-b1-s0"]


def test_q_priming_on_tatqa_replaces_wrong_turns_with_teacher_questions(tmp_path):
    out = tmp_path / "qp"
    learner = student(right_at=3)
    teacher = Scripted(lambda c: "Which row should I use?" if "ask you now" in c[-1]["content"]
                       else "Use the row the question names.")
    generate_q_priming(str(out), tatqa_node(), student=None, paths=PATHS, splits=["all"], q_priming_base=1.0,
                       backends=(learner, teacher))
    kept = read_examples(out / "all.jsonl")
    assert [e.id for e in kept] == ["q-a1-s0", "q-a2-s0", "q-a3-s0", "q-a6-s0", "q-b1-s0"]
    for example in kept:  # both wrong turns replaced (probability 1.0 ** t); the teacher answered each question
        assert [t.content for t in example.history[1::2]] == ["Which row should I use?"] * 2
        assert [t.content for t in example.history[2::2]] == ["Use the row the question names."] * 2
        assert example.meta["sml"]["replaced_turns"] == [1, 2] and example.response == RIGHT[example.id[:-3]]
    assert not any("It is 0.01." in m["content"] for c in learner.seen if len(c) > 2 for m in c)
    assert not any("Private solution" in m["content"] for c in learner.seen for m in c)
    counts = json.loads((out / "manifest.json").read_text())["counts"]["all"]
    assert counts["replaced_by_turn"] == {"1": 5, "2": 5} and counts["kept"] == 5


def test_tatqa_train_and_validation_splits_partition_the_problems(tmp_path):
    node = tatqa_node(eval_fraction=0.0, val_conversations=1)
    counts = generate_sml_dialogues(str(tmp_path / "s"), node, student=None, paths=PATHS,
                                    backends=(student(), Scripted(lambda c: "Check the row.")))
    ids = {split: {e.id[:-3] for e in read_examples(tmp_path / "s" / f"{split}.jsonl")}
           for split in ("train", "validation")}
    assert ids["train"] | ids["validation"] == set(GOLD) and not ids["train"] & ids["validation"]
    assert {frozenset(i[2] for i in v) for v in ids.values()} == {frozenset("a"), frozenset("b")}  # one table each
    assert counts["train"]["kept"] + counts["validation"]["kept"] == 5


@pytest.mark.parametrize("task", ["sml_dialogues", "q_priming"])
def test_builder_configs_select_tatqa(task):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="generate", overrides=[f"task={task}", "dataset@task.dataset=tatqa"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    validate_config(cfg)
    assert cfg.task.dataset.name == "tatqa" and cfg.task.out_dir.endswith(f"{task}/tatqa/seed0")
