"""run_dpo end to end on the tiny model: outputs, ln 2 at the first step, the saved policy, exact resume,
starting from a saved policy, and the shipped conf/trainer/dpo.yaml."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.training.dpo_recipe import run_dpo
from clarifylab.training.preference_data import gold_vs_other_action_pairs, read_pairs, write_pairs

LORA = {"_target_": "clarifylab.models.LoraSpec", "enabled": True, "r": 4, "alpha": 8, "dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pairs")
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})
    for split, name in (("train", "train.jsonl"), ("validation", "val.jsonl")):
        examples = corpus[split]
        losing = ["which year do you mean ?" if e.action.value == "answer" else e.clarifications[0].answer
                  for e in examples]
        write_pairs(directory / name, gold_vs_other_action_pairs(examples, losing))
    return directory  # 8 train / 4 validation pairs


def make_cfg(pairs_dir: Path, output_dir: Path, lora: bool = True, **trainer_overrides):
    trainer = {
        "name": "dpo", "pairs_path": str(pairs_dir / "train.jsonl"), "val_pairs_path": str(pairs_dir / "val.jsonl"),
        "init_policy": None, "beta": 0.5, "loss_type": "sigmoid", "label_smoothing": 0.0, "alpha": 0.0,
        "reference": "auto", "precompute_reference": False, "lr": 2e-2, "weight_decay": 0.0, "warmup_ratio": 0.0,
        "lr_schedule": "constant", "max_epochs": 3, "max_steps": -1, "batch_size": 2, "eval_batch_size": 4,
        "accumulate_grad_batches": 1, "gradient_clip_val": 1.0, "max_length": 512, "truncation": "error",
        "val_check_interval": 1.0, "limit_val_batches": 1.0, "checkpoint_every_n_steps": 3, "log_every_n_steps": 1,
        "num_workers": 0, "progress_bar": "none", "model_summary": False, "policy_from": "last",
    }
    trainer.update(trainer_overrides)
    trainer = {**OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf" / "trainer" / "dpo.yaml")), **trainer}
    return OmegaConf.create({
        "seed": 0, "output_dir": str(output_dir), "resume": None, "paths": {"cache_dir": str(output_dir / "cache")},
        "student": {"_target_": "clarifylab.models.ModelSpec", "source": "tiny", "seed": 0,
                    "lora": {**LORA, "enabled": lora}},
        "trainer": trainer,
        "hardware": {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "num_nodes": 1},
        "logger": {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": str(output_dir),
                           "name": "csv", "version": ""}},
    })


def csv_column(output_dir: Path, column: str = "train/loss") -> dict[int, float]:
    """step -> value of ``column`` from the CSVLogger's metrics.csv."""
    with open(output_dir / "csv" / "metrics.csv") as handle:
        return {int(row["step"]): float(row[column]) for row in csv.DictReader(handle) if row.get(column)}


def val_reward_margin(policy, tokenizer, pairs_path: Path, beta: float) -> float:
    """Pair-mean reward margin ``beta * ((pi_w - ref_w) - (pi_l - ref_l))`` of ``policy`` on the pairs, with the
    tiny base model (what every run here starts from) as the reference."""
    from clarifylab.models import build_tiny_model_and_tokenizer
    from clarifylab.training.logprobs import concatenated_forward
    from clarifylab.training.preference_data import PreferenceCollator, tokenize_pair

    reference, _ = build_tiny_model_and_tokenizer(seed=0)
    batch = PreferenceCollator(tokenizer.pad_token_id)(
        [tokenize_pair(pair, tokenizer, 512) for pair in read_pairs(pairs_path)])
    policy.eval()
    with torch.no_grad():
        pi = concatenated_forward(policy, batch.chosen, batch.rejected, tokenizer.pad_token_id)
        ref = concatenated_forward(reference, batch.chosen, batch.rejected, tokenizer.pad_token_id)
    margins = beta * ((pi.chosen_logps - ref.chosen_logps) - (pi.rejected_logps - ref.rejected_logps))
    return float(margins.mean())


@pytest.mark.parametrize(("lora", "overrides"), [(True, {}),
                                                 (False, {"loss_type": "hinge", "precompute_reference": True,
                                                          "policy_from": "best", "lr": 3e-3})])
def test_run_writes_checkpoints_policy_and_metrics_starting_at_ln2(pairs_dir, tmp_path, lora, overrides):
    from clarifylab.models import load_policy

    out = tmp_path / "run"
    result = run_dpo(make_cfg(pairs_dir, out, lora=lora, **overrides))
    assert set(result) == {"val/reward_margin", "val/reward_margin_last", "val/reward_accuracy_last", "val/loss_last",
                           "train/loss", "train/steps", "train/tokens_seen"}
    assert result["train/steps"] == 12 and all(math.isfinite(value) for value in result.values())
    assert result["val/reward_margin"] >= result["val/reward_margin_last"] and result["val/reward_margin"] > 0
    losses = csv_column(out)
    assert sorted(losses) == list(range(12))
    if overrides.get("loss_type") == "hinge":
        assert losses[0] == pytest.approx(1.0, abs=1e-5)  # relu(1 - beta * 0)
    else:
        assert torch.allclose(torch.tensor(losses[0]), torch.tensor(math.log(2)), atol=1e-7, rtol=0)
    assert csv_column(out, "val/reward_margin")  # logged per validation
    checkpoints = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert checkpoints[-1] == "last.ckpt" and checkpoints[0].startswith("best-step=")
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["PreferenceDataModule"]["num_examples"] == 8
    # The saved policy (best or last weights, as configured) scores the validation pairs like during training.
    policy, tokenizer, spec = load_policy(out / "policy", cache_dir=tmp_path / "cache")
    weights = json.loads((out / "policy" / "clarifylab_policy.json").read_text())["weights"]
    assert spec.source == "tiny" and weights == ("lora_adapter" if lora else "full")
    expected = result["val/reward_margin" if overrides.get("policy_from") == "best" else "val/reward_margin_last"]
    assert val_reward_margin(policy, tokenizer, pairs_dir / "val.jsonl", beta=0.5) == pytest.approx(expected, abs=1e-5)


class StopAt(pl.Callback):
    """Simulates a preempted job: stops training after optimizer step ``k``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.k:
            trainer.should_stop = True


def test_resume_continues_the_same_loss_curve(pairs_dir, tmp_path):
    run_dpo(make_cfg(pairs_dir, tmp_path / "a"))
    reference = csv_column(tmp_path / "a")
    run_dpo(make_cfg(pairs_dir, tmp_path / "b"), extra_callbacks=[StopAt(5)])  # preempted mid-epoch 1
    resumed = make_cfg(pairs_dir, tmp_path / "c")
    resumed.resume = str(tmp_path / "b" / "checkpoints" / "last.ckpt")  # written at step 3, mid-epoch 0
    run_dpo(resumed)
    curve = {step: loss for step, loss in csv_column(tmp_path / "b").items() if step < 3}
    curve.update(csv_column(tmp_path / "c"))
    assert sorted(curve) == sorted(reference) == list(range(12))
    for step in reference:
        assert curve[step] == pytest.approx(reference[step], abs=1e-5), step
    assert max(abs(reference[step] - reference[0]) for step in reference) > 1e-2  # the curve moves


class CaptureReference(pl.Callback):
    """At train start: the module's reference and policy log-probs of one fixed batch."""

    def __init__(self, batch) -> None:
        self.batch = batch
        self.reference = self.policy_start = self.policy_end = None

    def _policy(self, pl_module):  # the module's own forward (packed or plain), as its reference uses
        from clarifylab.training.preference_module import eval_mode

        with torch.no_grad(), eval_mode(pl_module.model):
            return pl_module.pair_forward(pl_module.model, self.batch.chosen, self.batch.rejected)

    def on_train_start(self, trainer, pl_module):
        self.reference = pl_module.reference_forward(self.batch)
        self.policy_start = self._policy(pl_module)

    def on_train_end(self, trainer, pl_module):
        self.policy_end = self._policy(pl_module)
        self.pair_forward = pl_module.pair_forward


def test_init_policy_is_the_reference_and_the_saved_policy_is_self_contained(pairs_dir, tmp_path):
    from clarifylab.models import (
        LoraSpec,
        ModelSpec,
        apply_lora,
        build_tiny_model_and_tokenizer,
        load_policy,
        save_policy,
    )
    from clarifylab.training.logprobs import concatenated_forward
    from clarifylab.training.preference_data import PreferenceCollator, tokenize_pair

    # An "SFT" policy: the tiny model with perturbed LoRA adapters, saved like train.py saves policies.
    spec = ModelSpec(source="tiny", seed=0, lora=LoraSpec(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    base, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    sft = apply_lora(base, spec.lora)
    with torch.no_grad():
        for name, parameter in sft.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    save_policy(sft, tokenizer, spec, tmp_path / "sft_policy")
    batch = PreferenceCollator(tokenizer.pad_token_id)(
        [tokenize_pair(pair, tokenizer, 512) for pair in read_pairs(pairs_dir / "val.jsonl")])
    sft.eval()
    with torch.no_grad():
        sft_logps = concatenated_forward(sft, batch.chosen, batch.rejected, tokenizer.pad_token_id)
        with sft.disable_adapter():
            base_logps = concatenated_forward(sft, batch.chosen, batch.rejected, tokenizer.pad_token_id)
    assert (sft_logps.chosen_logps - base_logps.chosen_logps).abs().max() > 1e-2  # the init policy is not the base

    out = tmp_path / "dpo"
    capture = CaptureReference(batch)
    result = run_dpo(make_cfg(pairs_dir, out, init_policy=str(tmp_path / "sft_policy"), max_steps=4),
                     extra_callbacks=[capture])
    assert result["train/steps"] == 4
    assert torch.allclose(capture.reference.chosen_logps, sft_logps.chosen_logps, atol=1e-4)
    assert torch.allclose(capture.reference.rejected_logps, sft_logps.rejected_logps, atol=1e-4)
    assert torch.equal(capture.policy_start.chosen_logps, capture.reference.chosen_logps)  # fresh LoRA on top
    assert torch.allclose(torch.tensor(csv_column(out)[0]), torch.tensor(math.log(2)), atol=1e-7, rtol=0)
    # Saved as a stack (SFT stage + this run's, unmerged): loading it needs nothing but the directory, and it
    # scores exactly like the trained policy.
    record = json.loads((out / "policy" / "clarifylab_policy.json").read_text())
    assert record["weights"] == "lora_stack" and record["adapters"] == ["stage0", "stage1"]
    loaded, _, _ = load_policy(out / "policy", cache_dir=tmp_path / "cache")
    with torch.no_grad():
        reloaded = capture.pair_forward(loaded, batch.chosen, batch.rejected)
    assert torch.equal(reloaded.chosen_logps, capture.policy_end.chosen_logps)
    assert (reloaded.chosen_logps - sft_logps.chosen_logps).abs().max() > 1e-3  # and it trained


def test_missing_inputs_fail_naming_the_option(pairs_dir, tmp_path):
    with pytest.raises(ConfigError, match="trainer.init_policy="):
        run_dpo(make_cfg(pairs_dir, tmp_path / "a", init_policy=str(tmp_path / "nowhere")))
    with pytest.raises(DataNotFoundError, match="trainer.pairs_path"):
        run_dpo(make_cfg(pairs_dir, tmp_path / "b", pairs_path=str(tmp_path / "none.jsonl")))
    with pytest.raises(ConfigError, match="trainer.policy_from"):
        run_dpo(make_cfg(pairs_dir, tmp_path / "c", policy_from="first"))


def test_shipped_dpo_config_runs(pairs_dir, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from clarifylab.config import PROJECT_ROOT, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[
            "trainer=dpo", "student=tiny", "logger=csv", f"trainer.pairs_path={pairs_dir / 'train.jsonl'}",
            f"trainer.val_pairs_path={pairs_dir / 'val.jsonl'}", "trainer.max_steps=2", "trainer.progress_bar=none",
            f"paths.cache_dir={tmp_path / 'cache'}"])
        HydraConfig.instance().set_config(cfg)
    cfg.output_dir = str(tmp_path / "run")
    cfg.logger.csv.save_dir = str(tmp_path / "run")
    seen = []

    def replacer_factory(tokenizer):
        def count_and_keep(module, batch):
            seen.append(batch.ids)
            return batch
        assert tokenizer.chat_template
        return count_and_keep

    result = run_dpo(cfg, replacer_factory=replacer_factory)
    assert result["train/steps"] == 2 and math.isfinite(result["val/reward_margin"])
    assert [len(ids) for ids in seen] == [4, 4]  # the on-policy hook saw every training batch (batch_size 4)
    assert (tmp_path / "run" / "policy" / "clarifylab_policy.json").is_file()


def test_bf16_init_policy_is_exactly_the_sft_policy_evaluate_loads(pairs_dir, tmp_path, bf16_sft_policy):
    """Paper scale (bf16, a 1e-3 relative LoRA delta): the policy a DPO/ACT run starts from and its reference equal
    the SFT policy as evaluate.py loads it (unmerged) exactly. The old bf16 merge into the initial weights lost
    most of the delta, so neither was the SFT row's model."""
    from clarifylab.models import load_policy
    from clarifylab.training.dpo_recipe import load_initial_policy
    from clarifylab.training.preference_data import PreferenceCollator, tokenize_pair
    from clarifylab.training.preference_module import PreferenceModule

    sft_dir, tokenizer = bf16_sft_policy(tmp_path)
    cfg = make_cfg(pairs_dir, tmp_path / "act", init_policy=str(sft_dir))
    cfg.student.dtype = "bfloat16"
    batch = PreferenceCollator(tokenizer.pad_token_id)(
        [tokenize_pair(pair, tokenizer, 512) for pair in read_pairs(pairs_dir / "val.jsonl")])
    sft, _, _ = load_policy(sft_dir, tmp_path / "cache")  # evaluation/components.py's load
    start, _, _, from_init = load_initial_policy(cfg)
    module = PreferenceModule(start, lr=1e-3, beta=0.1)
    with torch.no_grad():
        evaluated = sft(input_ids=batch.chosen["input_ids"], attention_mask=batch.chosen["attention_mask"]).logits
        with sft.disable_adapter():
            base = sft(input_ids=batch.chosen["input_ids"], attention_mask=batch.chosen["attention_mask"]).logits
        start.eval()
        initial = start(input_ids=batch.chosen["input_ids"], attention_mask=batch.chosen["attention_mask"]).logits
        with module.reference() as reference:
            ref = reference(input_ids=batch.chosen["input_ids"], attention_mask=batch.chosen["attention_mask"]).logits
    assert from_init and not torch.equal(evaluated, base)  # the SFT delta is visible
    assert torch.equal(initial, evaluated) and torch.equal(ref, evaluated)  # tolerance 0
