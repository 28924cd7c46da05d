"""Config schemas (clarifylab/schemas/): every shipped config validates; a stray key, a wrong type, a bad choice or
an unset ``???`` fails in one line that names the full key (and, for keys, lists the valid ones)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.registry import LOADERS
from clarifylab.errors import ConfigError
from clarifylab.schemas import validate_config
from clarifylab.schemas.dataset import DATASETS
from clarifylab.schemas.trainer import TRAINERS
from clarifylab.schemas.validate import GROUP_CHECKS, selected_groups

CONF = PROJECT_ROOT / "conf"
register_resolvers()

# group -> the entry point config that selects it
GROUPS = {"trainer": "train", "dataset": "train", "student": "train", "simulator": "train", "classifier": "train",
          "hardware": "train", "task": "generate", "baseline": "evaluate",
          "act_ablation": "train", "policy": "evaluate", "teacher": "train", "protocol": "evaluate",
          "ablation": "generate"}  # the teacher-student strategies: composed inside task=ts_curriculum
# options whose YAML leaves a ??? that the user must set
NEEDS = {("student", "hub"): ["student.name_or_path=org/model"], ("student", "local"): ["student.name_or_path=/m"],
         ("policy", "openai"): ["policy.model=served"],
         ("teacher", "openai"): ["teacher.model=served"],
         ("trainer", "dpo"): ["trainer.pairs_path=/pairs.jsonl"]}
EXPERIMENT_NEEDS = ["++sft_policy=/runs/sft/policy", "++act_pairs_dir=/runs/act_pairs"]


def compose_cfg(config_name: str, overrides: list[str]):
    """The composed config with its Hydra config set (as inside ``@hydra.main``), so the group choices are known."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def experiments() -> list[str]:
    root = CONF / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def validation_error(config_name: str, overrides: list[str]) -> str:
    cfg = compose_cfg(config_name, overrides)
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    message = str(caught.value)
    assert "\n" not in message
    return message


OPTION_CASES = [(group, option) for group in GROUPS for option in options(group)]


@pytest.mark.parametrize(("group", "option"), OPTION_CASES, ids=[f"{g}={o}" for g, o in OPTION_CASES])
def test_every_group_option_validates(group, option):
    if group == "ablation":
        cfg = compose_cfg("generate", ["task=ts_curriculum", f"ablation@task.ablation={option}"])
        assert ("ablation", "task.ablation") in selected_groups(cfg)
        validate_config(cfg)
        return
    cfg = compose_cfg(GROUPS[group], [f"{group}={option}", *NEEDS.get((group, option), [])])
    assert (group, group) in selected_groups(cfg)  # the check below really covers this group
    validate_config(cfg)


# act_paper/base is a fragment: the dataset experiments (pacific, abg_coqa, ambigsql) choose the dataset it sizes
FRAGMENTS = {"act_paper/base"}


def test_fragment_alone_is_refused():
    """``dataset.conversations`` means nothing to the default synthetic corpus: it used to be ignored silently."""
    message = validation_error("train", ["experiment=act_paper/base"])
    assert message.startswith("dataset.conversations is not an option of dataset=synthetic_tables")


# experiments of generate.py / evaluate.py only (validated in tests/methods/ts/test_ts_configs.py)
NOT_TRAINING = {"ts/build_tatqa", "ts/build_wtq", "ts/cpu_build_tatqa", "ts/cpu_build_wtq", "ts/benchmark",
                "ts/cpu_benchmark"}


@pytest.mark.parametrize("name", [name for name in experiments() if name not in FRAGMENTS | NOT_TRAINING])
def test_every_experiment_validates_for_training(name):
    """Experiments override values of every group; ``demo_act`` used to inherit SFT's ``sample_generations``."""
    cfg = compose_cfg("train", [f"experiment={name}", *EXPERIMENT_NEEDS])
    assert {"trainer", "dataset", "student", "hardware"} <= {group for group, _ in selected_groups(cfg)}
    validate_config(cfg)


@pytest.mark.parametrize("name", ["smoke", "demo", "act_paper/pacific", "act_paper/abg_coqa", "act_paper/ambigsql"])
def test_evaluation_experiments_validate(name):
    """evaluate.py composes no trainer group: an experiment's ``trainer:`` keys are not checked there."""
    cfg = compose_cfg("evaluate", [f"experiment={name}"])
    assert "trainer" not in {group for group, _ in selected_groups(cfg)}
    validate_config(cfg)


def test_agreement_config_validates():
    cfg = compose_cfg("agreement", ["classifier=llm_fewshot", "dataset=pacific"])
    assert {"dataset", "classifier"} <= {group for group, _ in selected_groups(cfg)}
    validate_config(cfg)


def test_task_nested_groups_are_checked():
    cfg = compose_cfg("generate", ["task=act_pairs"])
    assert ("dataset", "task.dataset") in selected_groups(cfg)
    message = validation_error("generate", ["task=act_pairs", "+task.dataset.max_train_exmples=3"])
    assert message.startswith("task.dataset.max_train_exmples is not an option of dataset=synthetic_tables")


def test_stray_trainer_key_names_it_and_lists_the_valid_keys():
    message = validation_error("train", ["trainer=act", "+trainer.bta=0.1"])
    assert message.startswith("trainer.bta is not an option of trainer=act")
    valid = message.split("valid keys: ")[1].split(", ")
    assert "beta" in valid and "max_turns" in valid and "sample_generations" not in valid
    assert len(valid) == len(TRAINERS["act"].__dataclass_fields__)


MISSPELLED = [
    ("train", ["trainer=sft", "+trainer.lrr=1"], "trainer.lrr", "trainer=sft", "lr"),
    ("train", ["trainer=irpo", "+trainer.num_sample=2"], "trainer.num_sample", "trainer=irpo", "num_samples"),
    ("train", ["dataset=pacific", "+dataset.conversation=50"], "dataset.conversation", "dataset=pacific",
     "conversations"),
    ("train", ["+student.lora_r=4"], "student.lora_r", "student (clarifylab.models.ModelSpec)", "lora"),
    ("train", ["+student.lora.rank=4"], "student.lora.rank", "student.lora", "r"),
    ("train", ["simulator=llm", "+simulator.max_new_token=3"], "simulator.max_new_token", "simulator=llm",
     "max_new_tokens"),
    ("train", ["simulator=llm", "+simulator.backend.batchsize=3"], "simulator.backend.batchsize",
     "a backend of kind transformers", "batch_size"),
    ("train", ["classifier=llm_fewshot", "+classifier.kk=2"], "classifier.kk", "classifier=llm_fewshot", "k"),
    ("train", ["+classifier.threshold=2"], "classifier.threshold",
     "classifier (clarifylab.env.action_classifier.HeuristicActionClassifier)", None),
    ("train", ["+hardware.device=2"], "hardware.device", "hardware", "devices"),
    ("evaluate", ["baseline=cot", "+baseline.shots=2"], "baseline.shots", "baseline", "conversations"),
    ("evaluate", ["+policy.batchsize=2"], "policy.batchsize", "policy (kind: transformers)", "batch_size"),
    ("evaluate", ["policy=openai", "policy.model=m", "+policy.max_token=2"], "policy.max_token",
     "a backend of kind openai", "max_tokens_param"),
    ("train", ["act_ablation=no_simulation", "+act_ablation.on_polcy=false"], "act_ablation.on_polcy", "act_ablation",
     "on_policy"),
    ("generate", ["task=dpo_dist_pairs", "+task.weak.batchsize=1"], "task.weak.batchsize",
     "a backend of kind transformers", "batch_size"),
    ("generate", ["task=synthetic_tables", "+task.sed=1"], "task.sed",
     "task (clarifylab.data.synthetic_tables.write_synthetic_corpus)", "seed"),
]


@pytest.mark.parametrize(("config", "overrides", "key", "where", "valid"), MISSPELLED,
                         ids=[case[2] for case in MISSPELLED])
def test_misspelled_key_in_each_group_fails_in_one_line(config, overrides, key, where, valid):
    message = validation_error(config, overrides)
    assert message.startswith(f"{key} is not an option of {where} ")
    assert "valid keys: " in message
    if valid:
        assert valid in message.split("valid keys: ")[1].split(", ")


WRONG_TYPES = [
    ("train", ["trainer=act", "trainer.lr=abc"],
     "trainer.lr: Value 'abc' of type 'str' could not be converted to Float (trainer=act)"),
    ("train", ["dataset.max_train_examples=many"], "dataset.max_train_examples: Value 'many'"),
    ("train", ["hardware.num_nodes=two"], "hardware.num_nodes: Value 'two'"),
    ("train", ["student.lora.r=wide"], "student.lora.r: Value 'wide'"),
    ("train", ["trainer.model_summary=maybe"], "trainer.model_summary: Value 'maybe' is not a valid bool"),
]


@pytest.mark.parametrize(("config", "overrides", "start"), WRONG_TYPES, ids=[case[2][:30] for case in WRONG_TYPES])
def test_wrong_type_fails_in_one_line(config, overrides, start):
    assert validation_error(config, overrides).startswith(start)


def test_bad_choice_names_the_choices():
    message = validation_error("train", ["trainer.policy_from=bestt"])
    assert message == "trainer.policy_from='bestt' is not one of ['best', 'last'] (trainer=sft)"


def test_unset_mandatory_value_is_named():
    message = validation_error("train", ["trainer=dpo"])
    assert message.startswith("trainer.pairs_path must be set")
    through = validation_error("train", ["experiment=demo_act", "act_pairs_dir=/pairs"])  # sft_policy: ???
    assert through.startswith("trainer.init_policy must be set (through ${sft_policy})")


def test_a_removed_key_fails_instead_of_falling_back_to_a_code_default():
    """Old code: build_trainer read ``t.get("log_every_n_steps", 50)`` / ``t.get("num_sanity_val_steps", 2)``,
    silently disagreeing with the YAML (1 and 0) whenever the key was absent."""
    message = validation_error("train", ["~trainer.log_every_n_steps"])
    assert message.startswith("trainer.log_every_n_steps is missing from trainer=sft")
    message = validation_error("train", ["trainer=act", "~trainer.num_sanity_val_steps"])
    assert message.startswith("trainer.num_sanity_val_steps is missing from trainer=act")


def test_unknown_names_list_the_schemas():
    assert validation_error("train", ["trainer.name=actt"]).startswith(
        f"trainer.name='actt' is not a known trainer; choose one of {sorted(TRAINERS)}")


def test_every_dataset_the_registry_loads_has_a_schema():
    assert set(DATASETS) == set(LOADERS)
    assert set(GROUPS) == set(GROUP_CHECKS)


def test_stray_key_fails_on_the_command_line_before_any_model_loads(tmp_path):
    """The acceptance command: one line naming ``trainer.bta`` and the valid keys, exit status 2, in seconds."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "train.py", "trainer=act", "+trainer.bta=0.1",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: trainer.bta is not an option of trainer=act")
    assert "valid keys: accumulate_grad_batches, alpha, batch_size, beta," in lines[0]
    assert "torch" not in result.stdout + result.stderr and elapsed < 30
    assert not Path(tmp_path / "run" / "policy").exists()


def test_every_command_the_act_sweep_plans_validates():
    """The data-size sweep (methods/act/data_size_sweep.py) builds train/evaluate/generate overrides in code."""
    from clarifylab.methods.act.data_size_sweep import plan

    config_of = {"train.py": "train", "evaluate.py": "evaluate", "generate.py": "generate"}
    for scale in ("paper", "cpu"):  # smoke = cpu with the tiny model
        for step in plan(PROJECT_ROOT / "outputs" / "sweep", datasets=("pacific", "ambigsql"), sizes=(250,),
                         scale=scale):
            script, *args = step.argv
            validate_config(compose_cfg(config_of[script], [a for a in args if not a.startswith("hydra.run.dir")]))


def test_evaluate_runs_the_protocols_runner_and_a_misspelled_protocol_key_fails():
    cfg = compose_cfg("evaluate", [])
    assert cfg.protocol.runner == "clarifylab.evaluation.policy_eval.run_policy_evaluation"
    assert cfg.protocol.objective == "trajectory_h"
    assert validation_error("evaluate", ["+protocol.objectiv=x"]).startswith(
        "protocol.objectiv is not an option of protocol=multiturn")
