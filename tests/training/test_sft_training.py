"""SFTDataModule + SFTModule on the tiny model: batches, overfitting, accumulation/clipping, checkpoints."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.models import LoraSpec, apply_lora, build_tiny_model_and_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.sft_data import SFTDataModule
from clarifylab.training.sft_module import RNG_KEY, SFTModule


@pytest.fixture(scope="module")
def corpus():
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})


def tiny(lora: bool, dropout: float = 0.0):
    torch.manual_seed(0)
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    spec = LoraSpec(r=4, alpha=8, dropout=dropout, target_modules=["q_proj", "v_proj"]) if lora else None
    return apply_lora(model, spec), tokenizer


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
               "limit_val_batches": 0, "default_root_dir": tmp_path, "use_distributed_sampler": False}
    options.update(kwargs)
    return pl.Trainer(**options)


def test_datamodule_batches_are_right_padded_shuffled_per_epoch_and_cover_the_data(corpus):
    _, tokenizer = tiny(lora=False)
    dm = SFTDataModule(corpus["train"], corpus["validation"], tokenizer, batch_size=3, eval_batch_size=2,
                       max_length=512, seed=0)
    dm.setup("fit")
    features = dm.train_set.features
    assert len(features) == 8 and len(dm.val_set) == 4
    loader = dm.train_dataloader()
    epoch0 = list(loader)
    assert [len(batch["input_ids"]) for batch in epoch0] == [3, 3, 2]
    for batch in epoch0:
        lengths = batch["attention_mask"].sum(dim=1)
        for row, length in enumerate(lengths.tolist()):
            assert batch["attention_mask"][row, :length].all() and not batch["attention_mask"][row, length:].any()
            assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
            assert batch["input_ids"][row, length:].eq(tokenizer.pad_token_id).all()
    seen = sorted(tuple(row[:length].tolist()) for batch in epoch0
                  for row, length in zip(batch["input_ids"], batch["attention_mask"].sum(dim=1)))
    assert seen == sorted(tuple(feature["input_ids"]) for feature in features)  # each example once
    loader.batch_sampler.sampler.set_epoch(1)  # what Lightning calls at each epoch start
    epoch1 = list(loader)
    assert [b["input_ids"].tolist() for b in epoch1] != [b["input_ids"].tolist() for b in epoch0]
    val = list(dm.val_dataloader())
    assert [len(batch["input_ids"]) for batch in val] == [2, 2]
    assert val[0]["labels"][0, : len(dm.val_set[0]["labels"])].tolist() == dm.val_set[0]["labels"]  # in order


def test_full_fine_tuning_overfits_four_examples(corpus, tmp_path):
    model, tokenizer = tiny(lora=False)
    dm = SFTDataModule(corpus["train"][:4], [], tokenizer, batch_size=4, eval_batch_size=4, max_length=512)
    module = SFTModule(model, lr=3e-3, warmup_ratio=0.0, lr_schedule="constant")

    class Losses(pl.Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.values.append(float(outputs["loss"]))

    recorder = Losses()
    trainer(tmp_path, max_steps=30, callbacks=[recorder]).fit(module, datamodule=dm)
    assert len(recorder.values) == 30
    assert recorder.values[-1] < 0.5 * recorder.values[0], recorder.values


class OptimizerProbe(pl.Callback):
    """Records, after every optimizer step, the total gradient norm the step used."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]

        def after_step(opt, args, kwargs):
            grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        optimizer.register_step_post_hook(after_step)


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_accumulation_and_clipping_flags_take_effect(corpus, tmp_path, clip):
    model, tokenizer = tiny(lora=True)
    dm = SFTDataModule(corpus["train"], [], tokenizer, batch_size=2, eval_batch_size=2, max_length=512)
    module = SFTModule(model, lr=1e-3)
    probe = OptimizerProbe()
    fit = trainer(tmp_path, max_epochs=2, accumulate_grad_batches=2, gradient_clip_val=clip, callbacks=[probe])
    fit.fit(module, datamodule=dm)
    assert fit.global_step == 4  # 2 epochs x 4 micro-batches / 2 accumulated
    assert fit.estimated_stepping_batches == 4 and len(probe.norms) == 4
    if clip is None:
        assert min(probe.norms) > 1e-2
    else:
        assert max(probe.norms) <= clip * (1 + 1e-4)


@pytest.mark.parametrize("lora", [True, False])
def test_checkpoints_hold_trainable_weights_rng_and_data_position(corpus, tmp_path, lora):
    from pytorch_lightning.callbacks import ModelCheckpoint

    model, tokenizer = tiny(lora=lora)
    dm = SFTDataModule(corpus["train"], [], tokenizer, batch_size=2, eval_batch_size=2, max_length=512, seed=4)
    module = SFTModule(model, lr=1e-3)
    every_3 = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=0, save_last=True)
    fit = trainer(tmp_path, max_steps=3, enable_checkpointing=True, callbacks=[every_3])
    fit.fit(module, datamodule=dm)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)  # written at step 3, mid-epoch 0
    keys = set(checkpoint["state_dict"])
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert keys == (trainable if lora else set(module.state_dict()))
    if lora:
        assert keys and all("lora_" in key for key in keys)
    assert set(checkpoint[RNG_KEY]) >= {"python", "numpy", "torch"}
    order = {"num_examples": 8, "shuffle": True, "seed": 4, "world_size": 1, "batch_size": 2}
    assert checkpoint["SFTDataModule"] == {**order, "epoch": 0, "batches_consumed": 3}
    # After fit, Lightning has closed the epoch that max_steps cut short: a resumed run starts the next one.
    fit.save_checkpoint(tmp_path / "after_fit.ckpt")
    after_fit = torch.load(tmp_path / "after_fit.ckpt", weights_only=True)
    assert after_fit["SFTDataModule"] == {**order, "epoch": 1, "batches_consumed": 0}
