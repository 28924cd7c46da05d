"""clarifylab.preflight.check_inputs: every path a run reads is checked before any model loads, naming the key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.preflight import check_inputs

sys.path.insert(0, str(Path(__file__).parent))
from test_config_composition import compose_resolved  # noqa: E402


def composed(config_name: str, overrides: list[str]):
    _, container = compose_resolved(config_name, overrides)
    return OmegaConf.create(container)


@pytest.fixture()
def policy(tmp_path) -> Path:
    (tmp_path / "policy").mkdir()
    return tmp_path / "policy"


def test_a_complete_dpo_config_passes(tmp_path, policy):
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / name).write_text("")
    check_inputs(composed("train", ["trainer=dpo", f"trainer.pairs_path={tmp_path / 'train.jsonl'}",
                                    f"trainer.val_pairs_path={tmp_path / 'validation.jsonl'}",
                                    f"trainer.init_policy={policy}"]))


@pytest.mark.parametrize(("override", "key"), [
    ("trainer.pairs_path=/no/train.jsonl", "trainer.pairs_path"),
    ("trainer.val_pairs_path=/no/validation.jsonl", "trainer.val_pairs_path"),
    ("trainer.init_policy=/no/policy", "trainer.init_policy"),
    ("resume=/no/last.ckpt", "resume"),
])
def test_each_missing_training_input_is_named(tmp_path, policy, override, key):
    (tmp_path / "train.jsonl").write_text("")
    base = {"trainer.pairs_path": str(tmp_path / "train.jsonl"), "trainer.init_policy": str(policy)}
    base[override.split("=")[0]] = override.split("=", 1)[1]
    cfg = composed("train", ["trainer=dpo", *(f"{k}={v}" for k, v in base.items())])
    value = override.split("=", 1)[1]
    with pytest.raises(DataNotFoundError, match=rf"^{key}={value} does not exist: "):
        check_inputs(cfg)


def test_sft_policy_is_reported_under_the_key_the_user_set():
    cfg = composed("train", ["experiment=act_paper/pacific_act", "sft_policy=/no/sft/policy",
                             "paths.data_dir=/no/data"])
    with pytest.raises(DataNotFoundError, match=r"^sft_policy=/no/sft/policy does not exist: .*sft_policy=null"):
        check_inputs(cfg)


def test_unset_mandatory_path_is_named():
    _, container = compose_resolved("train", ["trainer=dpo", "trainer.pairs_path=/x"])
    cfg = OmegaConf.create(container)
    cfg.trainer.pairs_path = "???"
    with pytest.raises(ConfigError, match=r"^trainer.pairs_path is not set: pass trainer.pairs_path=<path>"):
        check_inputs(cfg)


def test_dataset_files_with_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match=rf"^dataset.path={tmp_path}/pacific/validation.json does not exist: "
                                                r"set paths.data_dir \(env CLARIFYLAB_DATA_DIR\)"):
        check_inputs(composed("evaluate", ["dataset=pacific", f"paths.data_dir={tmp_path}"]))
    with pytest.raises(DataNotFoundError, match=rf"^dataset.dir={tmp_path}/ambigsql does not exist: build it with "
                                                r"`python generate.py task=ambigsql`"):
        check_inputs(composed("evaluate", ["dataset=ambigsql", f"paths.generated_dir={tmp_path}"]))
    with pytest.raises(DataNotFoundError, match=rf"^task.dataset.path={tmp_path}/abg-coqa/coqa_abg_val.json"):
        check_inputs(composed("generate", ["task=act_pairs", "dataset@task.dataset=abg_coqa",
                                           f"paths.data_dir={tmp_path}"]))
    # synthetic_tables is built on first use: an absent folder is fine
    check_inputs(composed("train", [f"paths.generated_dir={tmp_path}"]))


def test_evaluate_policy_dir():
    with pytest.raises(DataNotFoundError, match=r"^policy_dir=/no/policy does not exist: pass the `policy` folder"):
        check_inputs(composed("evaluate", ["policy_dir=/no/policy"]))


def test_a_folder_where_a_file_is_expected(tmp_path):
    cfg = composed("train", ["trainer=dpo", f"trainer.pairs_path={tmp_path}"])
    with pytest.raises(DataNotFoundError, match=rf"^trainer.pairs_path={tmp_path} is not a file: build the pairs"):
        check_inputs(cfg)
