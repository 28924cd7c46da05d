"""Online SML: the problems of a step, discounted group rewards from scripted dialogues, and a tiny run."""

import json

import pytest
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.methods.sml.online import SMLRollout, step_problems
from clarifylab.training.policy_gradient import group_advantages
from sml_scripted import Scripted, dataset_node, problems


def test_step_problems_walk_seeded_permutations():
    steps = [step_problems(5, 2, s, seed=0) for s in range(5)]  # 10 positions = two passes over 5 problems
    flat = [i for step in steps for i in step]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4] and sorted(flat[5:]) == [0, 1, 2, 3, 4]
    assert steps == [step_problems(5, 2, s, seed=0) for s in range(5)]  # a resumed run gets the same problems


def rollout_cfg(**trainer):
    t = {"batch_size": 2, "group_size": 4, "max_student_turns": 3, "max_new_tokens": 8, "teacher_max_new_tokens": 8,
         "temperature": 1.0, "top_p": 1.0, "threshold": None, "discount": 0.7, **trainer}
    return OmegaConf.create({"seed": 0, "trainer": t, "dataset": {"instruction": None}, "paths": {}})


def test_rollout_rewards_are_discounted_per_turn_and_grouped_by_problem():
    probs = problems(4)
    answers = {p.question: p.answer for p in probs}
    counter = {"n": 0}

    def student(conversation):  # in each group of 4: copies 0-1 right at turn 2, copy 2 at turn 1, copy 3 never
        gold = answers[conversation[1]["content"]]
        if len(conversation) == 2:  # first attempts come in copy order 0..3 within each group
            copy = counter["n"] % 4
            counter["n"] += 1
            return f"The answer is {gold}" if copy == 2 else f"copy {copy} guesses 0.01"
        return "still 0.01" if conversation[2]["content"].startswith("copy 3") else f"The answer is {gold}"

    rollout = SMLRollout(probs, Scripted(student), Scripted(lambda c: "Check the year."), rollout_cfg())
    trajectories = rollout(0)
    assert [t.group for t in trajectories] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [t.reward for t in trajectories] == pytest.approx([0.7, 0.7, 1.0, 0.0] * 2)
    adv = group_advantages([t.reward for t in trajectories], [t.group for t in trajectories])
    assert sum(adv[:4]) == pytest.approx(0.0, abs=1e-9) and adv[2] > adv[0] > 0 > adv[3]
    # the policy's messages: system + public turns; only the student speaks as the assistant
    roles = [m["role"] for m in trajectories[0].messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]


@pytest.mark.slow
@pytest.mark.parametrize("frozen_teacher", [False, True])
def test_tiny_online_run_saves_a_policy_and_logs_rollouts(tmp_path, frozen_teacher):
    from clarifylab.methods.sml.online import run_sml

    trainer = OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "trainer" / "sml.yaml"))
    trainer.update(max_steps=2, batch_size=2, group_size=2, max_student_turns=2, max_new_tokens=6,
                   teacher_max_new_tokens=6, progress_bar="none", lr=1e-3, frozen_teacher=frozen_teacher)
    cfg = OmegaConf.create({
        "seed": 0, "output_dir": str(tmp_path / "run"), "resume": None, "paths": {"cache_dir": str(tmp_path / "c")},
        "student": {"_target_": "clarifylab.models.ModelSpec", "source": "tiny", "seed": 0,
                    "lora": {"_target_": "clarifylab.models.LoraSpec", "enabled": True, "r": 4, "alpha": 8,
                             "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}},
        "teacher": {"name": "none"},
        "dataset": dataset_node(tmp_path, max_train_examples=4),
        "trainer": trainer,
        "hardware": {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "num_nodes": 1},
        "logger": None})
    result = run_sml(cfg)
    assert result["train/steps"] == 2.0
    assert (tmp_path / "run" / "policy" / "clarifylab_policy.json").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 0, 0, 0, 1, 1, 1, 1] and all(r["advantage"] == 0.0 or r["reward"] >= 0
                                                                       for r in rows)
