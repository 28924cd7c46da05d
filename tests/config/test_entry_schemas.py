"""Top-level keys of the entry configs (schemas/entry.py): a stray or misspelled key (``+polcy_dir=x``), a wrong
type or a bad choice fails in one line naming it; the keys experiments add (``sft_policy``, ``act_pairs_dir``, ...)
are accepted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.errors import ConfigError
from clarifylab.schemas import validate_config
from clarifylab.schemas.entry import ENTRY_CONFIGS

register_resolvers()
EXTRA = {"generate": ["task=synthetic_tables"]}


def validate(config_name: str, overrides: list[str]) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=EXTRA.get(config_name, []) + overrides,
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    validate_config(cfg)


def error(config_name: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(config_name, overrides)
    return str(caught.value)


@pytest.mark.parametrize("config_name", sorted(ENTRY_CONFIGS))
def test_a_stray_top_level_key_is_named_with_the_valid_keys(config_name):
    validate(config_name, [])                                  # the shipped config passes
    message = error(config_name, ["+reuse_run_dirr=true"])
    assert message.startswith(f"reuse_run_dirr is not an option of {config_name}.yaml (misspelled or stray key")
    assert "valid keys: " in message and "reuse_run_dir" in message.split("valid keys: ")[1].split(", ")


def test_evaluate_top_level_keys_are_typed_and_choices_checked():
    assert error("evaluate", ["+polcy_dir=x"]).startswith("polcy_dir is not an option of evaluate.yaml")
    assert error("evaluate", ["max_turns=abc"]).startswith("max_turns: Value 'abc'")
    assert error("evaluate", ["interpretations=every"]) == \
        "interpretations='every' is not one of ['first', 'all', 'auto'] (evaluate.yaml)"
    assert error("evaluate", ["~seed"]).startswith("seed is missing from evaluate.yaml")
    assert error("evaluate", ["+generation.top_k=5"]).startswith(
        "generation.top_k is not an option of generation")


def test_experiment_keys_are_accepted_and_typed():
    validate("train", ["++sft_policy=/runs/sft/policy", "++act_pairs_dir=/runs/pairs", "++pseudo_labels=true"])
    validate("train", ["experiment=smoke"])                    # sets generation: for evaluate.py
    validate("evaluate", ["experiment=smoke"])                 # sets trainer: for train.py
    assert error("train", ["++pseudo_labels=maybe"]).startswith("pseudo_labels: Value 'maybe'")


def test_evaluate_py_names_a_misspelled_top_level_key_in_one_line_before_anything_loads():
    env = {**os.environ, "WANDB_MODE": "disabled"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "evaluate.py"), "+polcy_dir=x"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.perf_counter() - started
    lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, lines)
    assert lines[0].startswith("error: polcy_dir is not an option of evaluate.yaml")
    assert "torch" not in done.stderr and elapsed < 20
