"""run_act end to end on the tiny model with the shipped conf/trainer/act.yaml (composed like train.py):
on-policy sampling from the current policy with the heuristic classifier, the oracle user and H; and the
ablation switches."""

from __future__ import annotations

import csv
import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from clarifylab.backends.base import SamplingParams
from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.methods.act.pairs import build_act_pairs
from clarifylab.methods.act.recipe import ablation_switches, run_act
from clarifylab.methods.act.replacer import BRANCHES
from clarifylab.training.preference_data import read_pairs, write_pairs

register_resolvers()


class FixedM:
    name = "m"
    model_id = "m"

    def complete(self, batch, params):
        return ["which year do you mean ?" if "Do NOT answer" in c[-1]["content"] else "1" for c in batch]


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("act_pairs")
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 1, "test": 0})
    for split in ("train", "validation"):
        write_pairs(directory / f"{split}.jsonl", build_act_pairs(corpus[split], FixedM(), params=SamplingParams())[0])
    return directory  # 4 train / 4 validation pairs


def compose_act(pairs_dir, out, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "trainer=act", "student=tiny", "logger=csv", "hardware=cpu", f"paths.cache_dir={out / 'cache'}",
            f"trainer.pairs_path={pairs_dir / 'train.jsonl'}", f"trainer.val_pairs_path={pairs_dir / 'validation.jsonl'}",
            "trainer.batch_size=2", "trainer.eval_batch_size=4", "trainer.max_steps=2", "trainer.max_new_tokens=6",
            "trainer.max_turns=2", "trainer.progress_bar=none", "trainer.model_summary=false", "trainer.lr=1e-2",
            "trainer.policy_from=last", "trainer.checkpoint_every_n_steps=null", *overrides],
            return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        cfg.output_dir = str(out)
        plain = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
                 for key in cfg if key != "hydra"}
    return OmegaConf.create(plain)


def csv_rows(out):
    with open(out / "csv" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_act_trains_with_on_policy_replacement_from_the_composed_config(pairs_dir, tmp_path):
    out = tmp_path / "run"
    result = run_act(compose_act(pairs_dir, out))
    assert result["train/steps"] == 2 and math.isfinite(result["train/loss"])
    assert math.isfinite(result["val/reward_margin"])
    counted = sum(result[f"act/{b}"] for b in BRANCHES if b not in ("not_sampled", "too_long"))
    assert counted == 4 and result["act/not_sampled"] == 0  # 2 steps x 2 pairs, every pair took a branch
    logged = [row for row in csv_rows(out) if row.get("act/wrong_action")]
    assert len(logged) == 2
    assert sum(float(row[f"act/{b}"]) for row in logged for b in ("wrong_action", "good_trajectory",
                                                                 "bad_trajectory")) == 4
    assert (out / "policy").is_dir()


def test_ablations(pairs_dir, tmp_path):
    out = tmp_path / "no_on_policy"
    result = run_act(compose_act(pairs_dir, out, "ablation=no_on_policy", "trainer.max_steps=1"))
    assert result["train/steps"] == 1 and not any(key.startswith("act/") for key in result)
    out = tmp_path / "random"
    result = run_act(compose_act(pairs_dir, out, "ablation=random_actions", "trainer.max_steps=1",
                                 "trainer.sample_every=2"))
    randomized = read_pairs(out / "pairs_random_actions.jsonl")
    assert [p.id for p in randomized] == [p.id for p in read_pairs(pairs_dir / "train.jsonl")]
    assert all("random_actions" in p.meta for p in randomized)
    assert result["act/not_sampled"] == 0  # call 0 is sampled with sample_every=2
    cfg = compose_act(pairs_dir, tmp_path / "x", "ablation=no_simulation")
    assert ablation_switches(cfg) == {"random_actions": False, "on_policy": True, "simulation": False}
    with pytest.raises(ConfigError, match="precompute_reference"):
        run_act(compose_act(pairs_dir, tmp_path / "y", "trainer.precompute_reference=true"))
