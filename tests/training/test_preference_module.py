"""PreferenceModule on the tiny model: ln 2 at step 1, the two references, accumulation invariance,
precomputed references, the on-policy replacement hook and full fine-tuning."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.errors import ConfigError
from clarifylab.models import LoraSpec, apply_lora, build_tiny_model_and_tokenizer
from clarifylab.training.logprobs import concatenated_forward
from clarifylab.training.preference_data import (
    PreferenceBatch,
    PreferenceCollator,
    gold_vs_other_action_pairs,
    tokenize_pair,
)
from clarifylab.training.preference_datamodule import PreferenceDataModule
from clarifylab.training.preference_module import PreferenceModule, frozen_copy

LN2 = torch.tensor(math.log(2))


@pytest.fixture(scope="module")
def pairs():
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})

    def make(examples):
        losing = ["which year do you mean ?" if e.action.value == "answer" else e.clarifications[0].answer
                  for e in examples]
        return gold_vs_other_action_pairs(examples, losing)

    return {"train": make(corpus["train"]), "validation": make(corpus["validation"])}  # 8 / 4 pairs


def tiny(lora: bool = True, dropout: float = 0.0):
    torch.manual_seed(0)  # peft draws the LoRA A matrices from the global RNG
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    spec = LoraSpec(r=4, alpha=8, dropout=dropout, target_modules=["q_proj", "v_proj"]) if lora else None
    return apply_lora(model, spec), tokenizer


def first_batch(pairs, tokenizer, n: int = 4) -> PreferenceBatch:
    return PreferenceCollator(tokenizer.pad_token_id)([tokenize_pair(p, tokenizer, 512) for p in pairs[:n]])


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
               "limit_val_batches": 0, "default_root_dir": tmp_path, "use_distributed_sampler": False}
    options.update(kwargs)
    return pl.Trainer(**options)


class StepLosses(pl.Callback):
    """The training loss per optimizer step (mean of its micro-batch losses)."""

    def __init__(self) -> None:
        self.per_step: dict[int, list[float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # global_step has already advanced when this micro-batch closed an accumulation window, and
        # Lightning hands back the loss divided by the number of accumulated micro-batches.
        accumulate = trainer.accumulate_grad_batches
        step = trainer.global_step - 1 if (batch_idx + 1) % accumulate == 0 else trainer.global_step
        self.per_step.setdefault(step, []).append(float(outputs["loss"]) * accumulate)

    def curve(self) -> list[float]:
        return [sum(values) / len(values) for _, values in sorted(self.per_step.items())]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_loss_is_exactly_ln2_at_step_one_when_policy_equals_reference(pairs, dropout):
    model, tokenizer = tiny(dropout=dropout)  # fresh LoRA: B = 0, so adapters on == adapters off
    module = PreferenceModule(model, lr=1e-3, beta=0.01, pad_token_id=tokenizer.pad_token_id)
    assert module.reference_mode == "adapter" and module.reference_model is None
    loss, metrics, n_tokens = module.pair_loss(first_batch(pairs["train"], tokenizer))
    assert torch.allclose(loss, LN2, atol=1e-7, rtol=0)
    assert metrics["reward_margin"] == 0 and metrics["reward_accuracy"] == 0 and int(n_tokens) > 0
    loss.backward()  # the gradient at h = 0 is -beta/2 (grad log pi_w - grad log pi_l): nonzero
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters() if p.requires_grad)
    irpo = PreferenceModule(model, lr=1e-3, beta=0.01, alpha=0.5, pad_token_id=tokenizer.pad_token_id)
    irpo_loss, irpo_metrics, _ = irpo.pair_loss(first_batch(pairs["train"], tokenizer))
    assert irpo_loss.item() == pytest.approx(math.log(2) + 0.5 * irpo_metrics["nll_chosen"].item(), abs=1e-6)
    assert irpo_metrics["nll_chosen"] > 1  # a random model: several nats per token


def test_adapter_disabled_reference_equals_a_frozen_copy_of_the_base(pairs):
    base, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    copy_of_base = frozen_copy(base)
    model = apply_lora(base, LoraSpec(r=4, alpha=8, dropout=0.2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    adapter = PreferenceModule(model, lr=1e-3, beta=0.1, reference="adapter")
    copied = PreferenceModule(copy_of_base, lr=1e-3, beta=0.1, reference="copy")
    batch = first_batch(pairs["train"], tokenizer)
    with_adapter_off, with_copy = adapter.reference_forward(batch), copied.reference_forward(batch)
    assert torch.allclose(with_adapter_off.chosen_logps, with_copy.chosen_logps, atol=1e-5)
    assert torch.allclose(with_adapter_off.rejected_logps, with_copy.rejected_logps, atol=1e-5)
    # The adapters were perturbed (the policy differs) and are active again, in train mode, afterwards.
    adapter.eval()
    with torch.no_grad():
        scored = concatenated_forward(adapter.model, batch.chosen, batch.rejected, tokenizer.pad_token_id)
    assert (scored.chosen_logps - with_copy.chosen_logps).abs().max() > 1e-2
    adapter.train()
    adapter.reference_forward(batch)
    assert all(module.training for module in adapter.model.modules())


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_accumulation_gives_the_same_loss_curve_as_one_larger_batch(pairs, tmp_path, loss_type):
    curves, weights = [], []
    for batch_size, accumulate in ((4, 1), (2, 2)):
        model, tokenizer = tiny()
        dm = PreferenceDataModule(pairs["train"], [], tokenizer, batch_size=batch_size, eval_batch_size=4,
                                  max_length=512, seed=0)
        module = PreferenceModule(model, lr=2e-2, beta=0.5, loss_type=loss_type, lr_schedule="constant",
                                  pad_token_id=tokenizer.pad_token_id)
        recorder = StepLosses()
        trainer(tmp_path / f"{batch_size}", max_steps=4, accumulate_grad_batches=accumulate,
                callbacks=[recorder]).fit(module, datamodule=dm)
        curves.append(recorder.curve())
        weights.append(torch.cat([p.detach().flatten() for p in module.parameters() if p.requires_grad]))
    assert len(curves[0]) == len(curves[1]) == 4
    assert curves[0] == pytest.approx(curves[1], abs=1e-4)
    assert abs(curves[0][-1] - curves[0][0]) > 1e-3  # it trained: the curve is not flat
    assert torch.allclose(weights[0], weights[1], atol=1e-5)


def test_precomputed_reference_matches_the_live_one(pairs, tmp_path):
    curves, tables = [], []
    for precompute in (False, True):
        model, tokenizer = tiny()
        dm = PreferenceDataModule(pairs["train"], pairs["validation"], tokenizer, batch_size=2, eval_batch_size=3,
                                  max_length=512)
        module = PreferenceModule(model, lr=2e-2, beta=0.5, precompute_reference=precompute,
                                  pad_token_id=tokenizer.pad_token_id)
        recorder = StepLosses()
        trainer(tmp_path / str(precompute), max_steps=3, callbacks=[recorder]).fit(module, datamodule=dm)
        curves.append(recorder.curve())
        tables.append(module.reference_table)
    assert tables[0] is None
    assert set(tables[1]) == {"train", "val"}
    assert sorted(tables[1]["train"]) == sorted(p.id for p in pairs["train"])
    assert sorted(tables[1]["val"]) == sorted(p.id for p in pairs["validation"])
    assert curves[0] == pytest.approx(curves[1], abs=1e-5)
    model, tokenizer = tiny()  # the table holds the base model's log-probs
    live = PreferenceModule(model, lr=1e-3, beta=0.5).reference_forward(first_batch(pairs["train"], tokenizer, 1))
    assert tables[1]["train"][pairs["train"][0].id] == pytest.approx(
        (live.chosen_logps.item(), live.rejected_logps.item()), abs=1e-4)


class LoserBecomesWinner:
    """A PairReplacer that sets y_l = y_w for every pair: the loss is then exactly ln 2 at every step,
    unless stale precomputed reference log-probs were used for the replaced side."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.calls: list[list[str]] = []

    def __call__(self, module, batch):
        assert isinstance(module, PreferenceModule) and batch.ref_chosen_logps is not None  # precomputed
        self.calls.append(batch.ids)
        replaced = [pair.with_sides(rejected=pair.chosen, replaced="rejected") for pair in batch.pairs]
        return PreferenceCollator(self.tokenizer.pad_token_id)(
            [tokenize_pair(pair, self.tokenizer, 512) for pair in replaced])


def test_replace_pairs_hook_runs_first_in_every_step_and_its_sides_get_a_live_reference(pairs, tmp_path):
    model, tokenizer = tiny()
    dm = PreferenceDataModule(pairs["train"], [], tokenizer, batch_size=2, eval_batch_size=4, max_length=512)
    module = PreferenceModule(model, lr=5e-2, beta=0.5, precompute_reference=True, pad_token_id=tokenizer.pad_token_id)
    module.pair_replacer = LoserBecomesWinner(tokenizer)
    recorder = StepLosses()
    trainer(tmp_path, max_steps=3, callbacks=[recorder]).fit(module, datamodule=dm)
    assert len(module.pair_replacer.calls) == 3 and all(len(ids) == 2 for ids in module.pair_replacer.calls)
    # 1e-5: packed, the identical sides sit at different places of one row (float summation order differs)
    assert recorder.curve() == pytest.approx([math.log(2)] * 3, abs=1e-5)
    # Without the replacer the same run moves away from ln 2 after the first step.
    model, tokenizer = tiny()
    module = PreferenceModule(model, lr=5e-2, beta=0.5, precompute_reference=True, pad_token_id=tokenizer.pad_token_id)
    plain = StepLosses()
    trainer(tmp_path / "plain", max_steps=3, callbacks=[plain]).fit(
        module, datamodule=PreferenceDataModule(pairs["train"], [], tokenizer, batch_size=2, eval_batch_size=4,
                                                max_length=512))
    assert abs(plain.curve()[-1] - math.log(2)) > 1e-3


def test_full_fine_tuning_uses_a_frozen_copy_that_stays_put_and_is_not_checkpointed(pairs, tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    model, tokenizer = tiny(lora=False)
    with pytest.raises(ConfigError, match="trainer.reference=adapter needs a LoRA policy"):
        PreferenceModule(model, lr=1e-3, beta=0.1, reference="adapter")
    module = PreferenceModule(model, lr=1e-3, beta=0.1, pad_token_id=tokenizer.pad_token_id)
    assert module.reference_mode == "copy"
    batch = first_batch(pairs["train"], tokenizer)
    before = module.reference_forward(batch)
    dm = PreferenceDataModule(pairs["train"], [], tokenizer, batch_size=4, eval_batch_size=4, max_length=512)
    every_step = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_top_k=0, save_last=True)
    trainer(tmp_path, max_steps=2, enable_checkpointing=True, callbacks=[every_step]).fit(module, datamodule=dm)
    after = module.reference_forward(batch)
    assert torch.equal(before.chosen_logps, after.chosen_logps)
    with torch.no_grad():
        _, metrics, _ = module.pair_loss(batch)
    assert abs(float(metrics["reward_margin"])) > 0  # the policy moved away from the reference
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert saved and not any(key.startswith("reference_model.") for key in saved)
    assert set(saved) == {name for name, p in module.named_parameters() if p.requires_grad}


def test_bad_options_fail_naming_them():
    model, _ = tiny()
    for kwargs, message in (({"beta": 0.0}, "trainer.beta"), ({"beta": 0.1, "loss_type": "kto"}, "trainer.loss_type"),
                            ({"beta": 0.1, "alpha": -1.0}, "trainer.alpha"),
                            ({"beta": 0.1, "loss_type": "hinge", "label_smoothing": 0.1}, "label_smoothing"),
                            ({"beta": 0.1, "reference": "twin"}, "trainer.reference")):
        with pytest.raises(ConfigError, match=message):
            PreferenceModule(model, lr=1e-3, **kwargs)
