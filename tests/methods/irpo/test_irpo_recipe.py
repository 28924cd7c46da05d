"""run_irpo end to end on the tiny model with the shipped conf/trainer/irpo.yaml (composed like train.py): two
iterations with a scripted sampler, M_1 sampled from iteration 0's policy, per-iteration outputs, skipping
finished iterations on re-run, and the error when no prompt yields a pair."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.synthetic_tables import load_synthetic_split, write_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.methods.irpo.recipe import iteration_config, run_irpo
from clarifylab.training.preference_data import read_pairs

register_resolvers()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_corpus(directory, tables_per_split={"train": 1, "validation": 1, "test": 1})
    return directory  # 4 training examples


class Scripted:
    """Sample j of each prompt: the gold reply when j is even (H = 1), ``"no idea"`` when odd (H = 0)."""

    name = model_id = "scripted"

    def __init__(self, examples, always_gold=False):
        self.gold = {json.dumps(prompt_messages(e)): e.response for e in examples}
        self.always_gold = always_gold

    def complete(self, batch, params):
        replies, seen = [], {}
        for conversation in batch:
            key = json.dumps(conversation)
            j = seen[key] = seen.get(key, -1) + 1
            replies.append(self.gold[key] if self.always_gold or j % 2 == 0 else "no idea")
        return replies


class Factory:
    """Records, per iteration, whether the sampled model still equals the tiny base model."""

    def __init__(self, examples, **options):
        self.examples, self.options, self.calls = examples, options, []

    def __call__(self, model, tokenizer, iteration):
        from clarifylab.models import build_tiny_model_and_tokenizer

        base, _ = build_tiny_model_and_tokenizer(seed=0)
        same = all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), base.state_dict().values()))
        self.calls.append((iteration, same))
        return Scripted(self.examples, **self.options)


def compose_irpo(data_dir, out, *overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "trainer=irpo", "student=tiny", "logger=csv", "hardware=cpu", "dataset=synthetic_tables",
            f"dataset.dir={data_dir}", f"paths.cache_dir={out / 'cache'}", "trainer.iterations=2",
            "trainer.num_samples=2", "trainer.batch_size=2", "trainer.max_steps=2", "trainer.max_new_tokens=4",
            "trainer.progress_bar=none", "trainer.model_summary=false", "trainer.lr=1e-2",
            "trainer.checkpoint_every_n_steps=null", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        cfg.output_dir = str(out)
        plain = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
                 for key in cfg if key != "hydra"}
    return OmegaConf.create(plain)


def test_two_iterations_train_from_the_previous_policy_and_rerun_skips_them(data_dir, tmp_path, capsys):
    examples = load_synthetic_split(data_dir, "train")
    out = tmp_path / "run"
    cfg = compose_irpo(data_dir, out)
    assert cfg.trainer.alpha == 1.0 and cfg.trainer.loss_type == "sigmoid"  # DPO + NLL(winner), alpha 1
    factory = Factory(examples)
    result = run_irpo(cfg, backend_factory=factory)
    assert factory.calls == [(0, True), (1, False)]  # M_1 = iteration 0's trained policy, not the base
    assert result["train/steps"] == 2 and math.isfinite(result["train/loss"])
    assert result["irpo/iterations"] == 2
    for t in (0, 1):
        directory = out / f"iter_{t}"
        assert result[f"irpo/iter_{t}/pairs"] == 4 and result[f"irpo/iter_{t}/skipped_all_incorrect"] == 0
        pairs = read_pairs(directory / "pairs.jsonl")
        assert {p.id for p in pairs} == {f"{e.id}/irpo{t}/0" for e in examples}
        assert all(p.rejected[0]["content"] == "no idea" and p.meta["chosen_score"] == 1.0 for p in pairs)
        assert (directory / "policy").is_dir() and (directory / "csv" / "metrics.csv").is_file()
        assert json.loads((directory / "metrics.json").read_text())["train/steps"] == 2
    record = json.loads((out / "iter_1" / "policy" / "clarifylab_policy.json").read_text())
    assert (record["weights"], record["adapters"]) == ("lora_stack", ["stage0", "stage1"])  # M_1's + its own, unmerged
    assert (out / "policy").resolve() == (out / "iter_1" / "policy").resolve()

    # Re-run: both iterations are done, nothing is sampled or trained; the metrics come back from disk.
    capsys.readouterr()
    rerun = Factory(examples)
    again = run_irpo(cfg, backend_factory=rerun)
    assert rerun.calls == [] and again == pytest.approx(result, nan_ok=True)
    assert capsys.readouterr().out.count("skipped") == 2

    # Iteration 1 interrupted after writing its pairs: only it is retrained, from the saved pairs.
    (out / "iter_1" / "metrics.json").unlink()
    partial = Factory(examples)
    resumed = run_irpo(cfg, backend_factory=partial)
    assert partial.calls == [] and resumed["train/steps"] == 2 and (out / "iter_1" / "metrics.json").is_file()

    # ... but not when the sampling settings changed since: iteration 1 samples again.
    (out / "iter_1" / "metrics.json").unlink()
    changed = Factory(examples)
    run_irpo(OmegaConf.merge(cfg, {"trainer": {"threshold": 0.5}}), backend_factory=changed)
    assert changed.calls == [(1, False)]
    assert json.loads((out / "iter_1" / "sampling.json").read_text())["threshold"] == 0.5


def test_iteration_config_moves_the_run_into_its_iteration_directory(data_dir, tmp_path):
    out = tmp_path / "run"
    sub = iteration_config(compose_irpo(data_dir, out), 1, str(out / "iter_0" / "policy"))
    assert sub.output_dir == str(out / "iter_1") and sub.logger.csv.save_dir == str(out / "iter_1")
    assert sub.trainer.init_policy == str(out / "iter_0" / "policy")
    assert sub.trainer.pairs_path == str(out / "iter_1" / "pairs.jsonl") and sub.resume is None


def test_no_pair_at_all_stops_with_the_counts(data_dir, tmp_path):
    examples = load_synthetic_split(data_dir, "train")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"iteration 0: no prompt of 4 .*\(4 all correct"):
        run_irpo(compose_irpo(data_dir, out), backend_factory=Factory(examples, always_gold=True))
    assert json.loads((out / "iter_0" / "pair_counts.json").read_text())["skipped_all_correct"] == 4


def test_default_sampler_draws_from_the_tiny_policy(data_dir, tmp_path):
    # The untrained tiny model never says the gold reply: every prompt is skipped, after 4 x 2 real samples.
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="iteration 0: no prompt of 4 has both"):
        run_irpo(compose_irpo(data_dir, out))
    counts = json.loads((out / "iter_0" / "pair_counts.json").read_text())
    assert counts["samples"] == 8 and counts["pairs"] == 0 and counts["correct_samples"] == 0


def test_every_iteration_gets_its_own_wandb_run(data_dir, tmp_path, monkeypatch):
    """Old code: iteration_config kept the W&B name and run_irpo never finished a run, so the WandbLogger of
    iteration 1 reused iteration 0's active run."""
    import importlib.machinery
    import sys
    import types

    from clarifylab.models import ModelSpec, build_tiny_model_and_tokenizer, save_policy

    out = tmp_path / "run"
    cfg = compose_irpo(data_dir, out, "logger=wandb")
    subs = [iteration_config(cfg, t, None) for t in (0, 1)]
    assert [(s.logger.wandb.name, s.logger.wandb.group) for s in subs] == [
        (f"{cfg.run_name}-iter0", cfg.run_name), (f"{cfg.run_name}-iter1", cfg.run_name)]
    runs, finished = [], []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.run = None
    fake.finish = lambda: (finished.append(fake.run), setattr(fake, "run", None))
    monkeypatch.setitem(sys.modules, "wandb", fake)

    def fake_run_dpo(sub, extra_callbacks=None):
        fake.run = fake.run or sub.logger.wandb.name  # a WandbLogger reuses an active run
        runs.append(fake.run)
        model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
        save_policy(model, tokenizer, ModelSpec(source="tiny"), out / f"iter_{len(runs) - 1}" / "policy")
        return {"train/steps": 1.0}

    monkeypatch.setattr("clarifylab.training.dpo_recipe.run_dpo", fake_run_dpo)
    run_irpo(cfg, backend_factory=Factory(load_synthetic_split(data_dir, "train")))
    assert runs == finished == [f"{cfg.run_name}-iter0", f"{cfg.run_name}-iter1"]
