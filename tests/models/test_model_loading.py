"""load_model_and_tokenizer over the offline sources, LoRA / full fine-tuning setup, error messages."""

from __future__ import annotations

import pytest

from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.models.loading import count_parameters, load_model_and_tokenizer, prepare_for_training
from clarifylab.models.spec import LoraSpec, ModelSpec


def test_tiny_source_gives_the_seeded_model_in_the_requested_dtype(tmp_path):
    import torch

    model, tokenizer = load_model_and_tokenizer(ModelSpec(source="tiny", seed=1, dtype="bfloat16"), tmp_path)
    assert model.dtype == torch.bfloat16 and not model.training
    assert tokenizer.pad_token_id == 1 and model.config.pad_token_id == 1
    assert list(tmp_path.iterdir()) == []  # the tiny source needs no cache


def test_lora_trains_exactly_the_adapter_matrices(tmp_path):
    spec = ModelSpec(source="tiny", lora=LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    base, _ = load_model_and_tokenizer(spec, tmp_path)
    _, base_total = count_parameters(base)
    model = prepare_for_training(base, spec)
    trainable, total = count_parameters(model)
    # per layer: q_proj and v_proj (64 -> 64) each get A [4, 64] + B [64, 4] = 512; 2 layers
    assert trainable == 2 * 2 * (4 * 64 + 64 * 4) == 2048
    assert total == base_total + 2048
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(names) == 8 and all("lora_A" in n or "lora_B" in n for n in names)


def test_fresh_lora_leaves_outputs_unchanged_and_adapters_can_be_disabled(tmp_path):
    import torch

    spec = ModelSpec(source="tiny", lora=LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["all-linear"]))
    base, tokenizer = load_model_and_tokenizer(spec, tmp_path)
    batch = tokenizer(["what was the revenue ?"], return_tensors="pt")
    with torch.no_grad():
        before = base(**batch).logits.clone()
        model = prepare_for_training(base, spec)
        assert torch.equal(model(**batch).logits, before)  # B is initialised to zero
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.1)
        changed = model(**batch).logits
        with model.disable_adapter():
            assert torch.equal(model(**batch).logits, before)
    assert not torch.allclose(changed, before)
    # all-linear: the 7 projections of each of the 2 layers, not the LM head
    assert sum(1 for n, _ in model.named_modules() if n.endswith("lora_A")) == 14


def test_full_fine_tuning_trains_every_parameter_and_checkpointing_is_enabled(tmp_path):
    spec = ModelSpec(source="tiny", lora=LoraSpec(enabled=False), gradient_checkpointing=True)
    base, tokenizer = load_model_and_tokenizer(spec, tmp_path)
    for parameter in base.parameters():
        parameter.requires_grad_(False)
    model = prepare_for_training(base, spec)
    trainable, total = count_parameters(model)
    assert model is base and trainable == total
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert model.config.use_cache is False
    model.train()
    batch = tokenizer(["what was the revenue ?"], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()  # recomputation path runs
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_lora_target_module_is_a_config_error(tmp_path):
    spec = ModelSpec(source="tiny", lora=LoraSpec(target_modules=["c_attn"]))
    base, _ = load_model_and_tokenizer(spec, tmp_path)
    with pytest.raises(ConfigError, match="lora.target_modules"):
        prepare_for_training(base, spec)


def test_local_source_loads_a_saved_directory_and_fills_a_missing_pad_token(tmp_path):
    import torch

    from clarifylab.models.tiny import build_tiny_model_and_tokenizer

    model, tokenizer = build_tiny_model_and_tokenizer(seed=5)
    tokenizer.pad_token = None
    model.config.pad_token_id = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    loaded, loaded_tok = load_model_and_tokenizer(ModelSpec(source="local", name_or_path=str(tmp_path / "m")), tmp_path)
    assert loaded_tok.pad_token == loaded_tok.eos_token == "<|im_end|>"
    assert loaded.config.pad_token_id == loaded.generation_config.pad_token_id == loaded_tok.eos_token_id
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_local_source_errors_name_the_option(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"student.name_or_path='.*nowhere' is not a directory"):
        load_model_and_tokenizer(ModelSpec(source="local", name_or_path=str(tmp_path / "nowhere")), tmp_path)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(DataNotFoundError, match="has no config.json.*load_policy"):
        load_model_and_tokenizer(ModelSpec(source="local", name_or_path=str(tmp_path / "adapter")), tmp_path)


def test_hub_source_offline_says_to_use_a_local_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(source="hub", name_or_path="clarifylab-test/does-not-exist", role="teacher")
    with pytest.raises(DataNotFoundError) as error:
        load_model_and_tokenizer(spec, tmp_path)
    message = str(error.value)
    assert "teacher.name_or_path='clarifylab-test/does-not-exist'" in message
    assert "If the Hub is unreachable" in message and "teacher.source=local" in message
