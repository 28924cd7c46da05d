"""run_act end to end on the tiny model with the shipped conf/trainer/act.yaml (composed like train.py):
on-policy sampling from the current policy with the heuristic classifier, the oracle user and H; and the
ablation switches."""

from __future__ import annotations

import csv
import json
import math

import pytest
import pytorch_lightning as pl
import torch
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
    result = run_act(compose_act(pairs_dir, out, "act_ablation=no_on_policy", "trainer.max_steps=1"))
    assert result["train/steps"] == 1 and not any(key.startswith("act/") for key in result)
    out = tmp_path / "random"
    result = run_act(compose_act(pairs_dir, out, "act_ablation=random_actions", "trainer.max_steps=1",
                                 "trainer.sample_every=2"))
    randomized = read_pairs(out / "pairs_random_actions.jsonl")
    assert [p.id for p in randomized] == [p.id for p in read_pairs(pairs_dir / "train.jsonl")]
    assert all("random_actions" in p.meta for p in randomized)
    assert result["act/not_sampled"] == 0  # call 0 is sampled with sample_every=2
    cfg = compose_act(pairs_dir, tmp_path / "x", "act_ablation=no_simulation")
    assert ablation_switches(cfg) == {"random_actions": False, "on_policy": True, "simulation": False}
    with pytest.raises(ConfigError, match="precompute_reference"):
        run_act(compose_act(pairs_dir, tmp_path / "y", "trainer.precompute_reference=true"))


# ---- AmbigSQL: H is execution match on the Spider databases under paths.data_dir ----

AMBIGSQL = [  # (request, gold response, action, db)
    ("How many teachers are there?", "SELECT count(*) FROM teacher", "answer", "school"),
    ("Show the species of every animal.", "SELECT species FROM animal", "answer", "zoo"),
    ("Tell me about the teachers.", "What do you want to know?", "clarify", "school"),
]


class SQLPolicy:
    """The gold query for request 0, a wrong query for 1 (other rows), a query (wrong action) for the clarify 2."""

    name = model_id = "sql-policy"

    def complete(self, batch, params):
        replies = {AMBIGSQL[0][0]: "SELECT count(*) FROM teacher", AMBIGSQL[1][0]: "SELECT name FROM animal",
                   AMBIGSQL[2][0]: "SELECT * FROM teacher"}
        return [replies[conversation[-1]["content"]] for conversation in batch]


def ambigsql_pairs(directory):
    from clarifylab.data.schema import Action, Clarification, Example, Turn

    sql = "SELECT count(*) FROM teacher"
    examples = [Example(id=f"s{i}", task="ambigsql", context=f"Schema of {db}", history=[Turn("user", request)],
                        response=response, action=Action(action), goal=[response if action == "answer" else sql],
                        clarifications=[Clarification(AMBIGSQL[0][0], sql)] if action == "clarify" else [],
                        meta={"db_id": db})
                for i, (request, response, action, db) in enumerate(AMBIGSQL)]
    pairs = build_act_pairs(examples, FixedM(), params=SamplingParams(), k=1)[0]
    write_pairs(directory / "train.jsonl", pairs)
    return directory / "train.jsonl"


def test_act_on_ambigsql_scores_execution_match_with_the_configured_data_dir(tmp_path, build_spider_tree):
    """The old default scorer called score_outcomes without data_dir: ConfigError at the first scored batch."""
    build_spider_tree(tmp_path / "data" / "spider")
    train = ambigsql_pairs(tmp_path)
    cfg = compose_act(tmp_path, tmp_path / "run", "dataset=ambigsql", f"paths.data_dir={tmp_path / 'data'}",
                      f"trainer.pairs_path={train}", "trainer.val_pairs_path=null", "trainer.batch_size=3",
                      "trainer.max_steps=1")
    result = run_act(cfg, policy_factory=lambda module, size: SQLPolicy())
    assert (result["act/good_trajectory"], result["act/bad_trajectory"], result["act/wrong_action"]) == (1, 1, 1)
    samples = [json.loads(line) for line in (tmp_path / "run" / "act_samples" / "rank0.jsonl").read_text().splitlines()]
    assert {s["pair_id"]: s["score"] for s in samples} == {"s0": 1.0, "s1": 0.0, "s2": None}


# ---- preemption: the replacer's state is part of the checkpoint ----

class StopAt(pl.Callback):
    """Preemption: stop after optimizer step ``k``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.k:
            trainer.should_stop = True


class LossPerStep(pl.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step - 1] = float(outputs["loss"] if isinstance(outputs, dict) else outputs)


def sample_log(out):
    return [json.loads(line) for line in (out / "act_samples" / "rank0.jsonl").read_text().splitlines()]


def test_resumed_act_run_reproduces_the_loss_curve_and_the_sample_log(pairs_dir, tmp_path):
    """Old code: the resumed replacer restarted at call 0, so calls 0.. were sampled again (repeated ids, other
    seeds, another curve)."""
    overrides = ("trainer.max_steps=5", "trainer.checkpoint_every_n_steps=2", "trainer.val_pairs_path=null",
                 "trainer.temperature=1.0", "trainer.max_new_tokens=4")
    whole = LossPerStep()
    run_act(compose_act(pairs_dir, tmp_path / "a", *overrides), extra_callbacks=[whole])
    first = LossPerStep()
    run_act(compose_act(pairs_dir, tmp_path / "b", *overrides), extra_callbacks=[first, StopAt(3)])
    checkpoint = tmp_path / "b" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["global_step"] == 2 and saved["clarifylab_pair_replacer"]["calls"] == 2
    assert max(s["call"] for s in sample_log(tmp_path / "b")) == 2  # call 2 ran after the checkpoint
    with (tmp_path / "b" / "act_samples" / "rank0.jsonl").open("a") as handle:
        handle.write('{"call": 3, "rank": 0, "pai')  # a line cut short by the preemption
    resumed = compose_act(pairs_dir, tmp_path / "b", *overrides)
    resumed.resume = str(checkpoint)
    second = LossPerStep()
    result = run_act(resumed, extra_callbacks=[second])
    curve = {step: loss for step, loss in first.losses.items() if step < 2} | second.losses
    assert sorted(curve) == sorted(whole.losses) == list(range(5))
    for step in whole.losses:
        assert curve[step] == pytest.approx(whole.losses[step], abs=1e-5), step
    assert sample_log(tmp_path / "b") == sample_log(tmp_path / "a")
    assert [s["call"] for s in sample_log(tmp_path / "a")] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert sum(result[f"act/{b}"] for b in BRANCHES if b != "too_long") == 10  # totals restored: 5 calls x 2 pairs


# ---- the pairs' manifest must match the run (checked before any model loads) ----

@pytest.fixture(scope="module")
def built_pairs(tmp_path_factory):
    """Alg. 1 pairs written by generate_act_pairs (train + validation, seed 0) with their manifest."""
    from clarifylab.methods.act.pairs import generate_act_pairs

    root = tmp_path_factory.mktemp("built")
    cfg = compose_act(root, root / "run", f"paths.generated_dir={root / 'generated'}")
    generate_act_pairs(str(root / "pairs"), cfg.dataset, {}, cfg.classifier, cfg.paths, generator=FixedM(),
                       max_examples=4, seed=0)
    return root


def test_pairs_built_for_another_setting_are_refused_naming_the_field_and_file(built_pairs, tmp_path, monkeypatch):
    import clarifylab.training.dpo_recipe as dpo_recipe

    monkeypatch.setattr(dpo_recipe, "load_initial_policy", lambda cfg: pytest.fail("a model was loaded"))
    pairs = built_pairs / "pairs"
    manifest = json.loads((pairs / "manifest.json").read_text())
    assert (manifest["params"]["conversations"], manifest["params"]["seed"]) == (None, 0)

    def run(*overrides):
        cfg = compose_act(pairs, tmp_path / "run", f"paths.generated_dir={built_pairs / 'generated'}", *overrides)
        with pytest.raises(ConfigError) as error:
            run_act(cfg)
        assert "\n" not in str(error.value)
        return str(error.value)

    assert run("seed=1") == (f"{pairs / 'train.jsonl'} was built with seed=0 but this run has seed=1 "
                             f"({pairs / 'manifest.json'}): build matching pairs with `python generate.py "
                             "task=act_pairs` or point trainer.pairs_path at them")
    assert "was built with split='train' but this run has split='validation'" in run(
        f"trainer.val_pairs_path={pairs / 'train.jsonl'}")
    del manifest["params"]["conversations"]
    (pairs / "manifest.json").write_text(json.dumps(manifest))
    try:
        assert "does not record 'conversations'" in run()
    finally:
        manifest["params"]["conversations"] = None
        (pairs / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "empty.jsonl").write_text("")
    message = run(f"trainer.pairs_path={tmp_path / 'empty.jsonl'}", "trainer.val_pairs_path=null")
    assert message.startswith(f"{tmp_path / 'empty.jsonl'} holds no preference pairs")
