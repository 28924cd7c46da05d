"""Which training run a policy folder came from (read from <run dir>/.hydra, also through IRPO's symlink), and
what else metrics.json records about a run's provenance: the data file and its hash, the code version."""

from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

from clarifylab.evaluation.run_provenance import code_version, data_file, data_identity, trained_run_info

UNKNOWN_RUN = {"approach": "trained", "conversations": None, "trainer": None, "act_ablation": None,
               "train_dataset": None, "pairs": None, "pseudo_labels": None, "train_seed": None,
               "train_overrides": None}


def test_run_info_follows_the_link_name_not_its_target(tmp_path):
    run = tmp_path / "irpo_run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("trainer:\n  name: irpo\n  pairs_path: null\n"
                                                "dataset:\n  name: pacific\n  conversations: 50\n"
                                                "ablation:\n  name: none\nseed: 3\n")
    (run / "iter_1" / "policy").mkdir(parents=True)
    (run / "policy").symlink_to("iter_1/policy")
    assert trained_run_info(run / "policy") == {**UNKNOWN_RUN, "approach": "irpo", "conversations": 50,
                                                "trainer": "irpo", "act_ablation": "none", "train_dataset": "pacific",
                                                "train_seed": 3}
    assert trained_run_info(tmp_path / "elsewhere" / "policy") == UNKNOWN_RUN


def test_run_info_names_ablation_pairs_and_pseudo_labels(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from clarifylab.config import PROJECT_ROOT

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        # as inside evaluate.py: a Hydra config is set, so ${hydra:...} would resolve to this run's values
        HydraConfig.instance().set_config(compose(config_name="evaluate", return_hydra_config=True))
    pairs = tmp_path / "act_pairs" / "pacific-pseudo"
    pairs.mkdir(parents=True)
    (pairs / "manifest.json").write_text(json.dumps({"params": {"pseudo_labels": True}}))
    run = tmp_path / "act_run"
    (run / ".hydra").mkdir(parents=True)
    # ${hydra:...} is kept as its text: resolved here it would name the evaluating run's choices, not the train run's.
    (run / ".hydra" / "config.yaml").write_text(
        f"pairs_dir: {pairs}\ntrainer:\n  name: act\n  pairs_path: ${{pairs_dir}}/train.jsonl\n"
        "act_ablation:\n  name: no_simulation\ndataset:\n  name: ${hydra:runtime.choices.dataset}\nseed: 1\n")
    (run / ".hydra" / "overrides.yaml").write_text("- trainer=act\n- act_ablation=no_simulation\n- seed=1\n")
    info = trained_run_info(run / "policy")
    assert (info["trainer"], info["act_ablation"], info["pairs"], info["pseudo_labels"]) == (
        "act", "no_simulation", f"{pairs}/train.jsonl", True)
    assert info["train_dataset"] == "${hydra:runtime.choices.dataset}"
    assert info["train_overrides"] == ["trainer=act", "act_ablation=no_simulation", "seed=1"] and info["train_seed"] == 1


def test_data_file_and_its_hash(tmp_path):
    native = tmp_path / "validation.json"
    native.write_text("[1, 2]")
    assert data_file(OmegaConf.create({"path": str(native)}), "test") == native
    assert data_file(OmegaConf.create({"dir": "/d", "tsv": "data/x.tsv"}), "test").as_posix() == "/d/data/x.tsv"
    assert data_file(OmegaConf.create({"dir": "/d"}), "validation").as_posix() == "/d/validation.jsonl"
    assert data_identity(OmegaConf.create({"path": str(native)}), "test") == {
        "data_file": str(native), "data_sha256": hashlib.sha256(b"[1, 2]").hexdigest()}
    assert data_identity(OmegaConf.create({"name": "x"}), "test") == {"data_file": None, "data_sha256": None}


def test_code_version_is_a_commit_or_none(tmp_path):
    version = code_version()
    assert version is None or len(version.removesuffix("+dirty")) == 40
    assert code_version(tmp_path) is None  # not a git checkout


def test_run_info_prefers_the_config_the_train_run_resolved(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "csv").mkdir()
    # .hydra keeps ${paths.generated_dir} (which would resolve in this process, maybe elsewhere); the CSV
    # logger's hparams.yaml holds the path the train run used.
    (run / ".hydra" / "config.yaml").write_text("paths:\n  generated_dir: /here\ntrainer:\n  name: act\n"
                                                "  pairs_path: ${paths.generated_dir}/p/train.jsonl\n")
    (run / "csv" / "hparams.yaml").write_text("trainer:\n  name: act\n  pairs_path: /there/p/train.jsonl\n")
    assert trained_run_info(run / "policy")["pairs"] == "/there/p/train.jsonl"
    (run / "csv" / "hparams.yaml").unlink()
    assert trained_run_info(run / "policy")["pairs"] == "/here/p/train.jsonl"
