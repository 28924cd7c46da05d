"""save_policy / load_policy round trips (LoRA adapter and full weights) and their error messages."""

from __future__ import annotations

import json

import pytest

from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.models.loading import load_model_and_tokenizer, prepare_for_training
from clarifylab.models.policy_io import POLICY_FILENAME, load_policy, save_policy
from clarifylab.models.spec import LoraSpec, ModelSpec

TEXT = "<|im_start|>user\nwhich company had the highest revenue in 2020 ?<|im_end|>\n<|im_start|>assistant\n"


def _trained(spec, tmp_path):
    """A tiny policy whose trainable weights were perturbed (as if trained)."""
    import torch

    base, tokenizer = load_model_and_tokenizer(spec, tmp_path)
    model = prepare_for_training(base, spec)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    model.eval()
    return model, tokenizer


def _logits(model, tokenizer):
    import torch

    with torch.no_grad():
        return model(**tokenizer([TEXT], return_tensors="pt")).logits


def test_lora_policy_round_trip_gives_identical_logits(tmp_path):
    import torch
    from peft import PeftModel

    lora = LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    spec = ModelSpec(source="tiny", seed=7, lora=lora)
    model, tokenizer = _trained(spec, tmp_path)
    out = save_policy(model, tokenizer, spec, tmp_path / "policy")
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", POLICY_FILENAME, "tokenizer.json"} <= files
    assert "model.safetensors" not in files  # only the adapter is stored
    assert json.loads((out / POLICY_FILENAME).read_text())["weights"] == "lora_adapter"

    loaded, loaded_tok, loaded_spec = load_policy(out, tmp_path)
    assert loaded_spec == spec and isinstance(loaded, PeftModel)
    assert loaded_tok(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    expected = _logits(model, tokenizer)
    torch.testing.assert_close(_logits(loaded, loaded_tok), expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in loaded.parameters())

    merged, _, _ = load_policy(out, tmp_path, merge=True)
    assert not isinstance(merged, PeftModel)
    torch.testing.assert_close(_logits(merged, loaded_tok), expected, atol=1e-5, rtol=0)

    trainable, _, _ = load_policy(out, tmp_path, trainable=True)
    assert sum(p.numel() for p in trainable.parameters() if p.requires_grad) == 2048


def test_full_policy_round_trip_and_overwrite_replaces_the_old_directory(tmp_path):
    import torch

    spec = ModelSpec(source="tiny", seed=2, lora=None)
    model, tokenizer = _trained(spec, tmp_path)
    target = tmp_path / "policy"
    target.mkdir()
    (target / "stale.txt").write_text("from an older save")
    save_policy(model, tokenizer, spec, target)
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left
    loaded, loaded_tok, loaded_spec = load_policy(target, tmp_path)
    assert loaded_spec == spec
    torch.testing.assert_close(_logits(loaded, loaded_tok), _logits(model, tokenizer), atol=1e-6, rtol=0)


def test_failed_save_leaves_no_directory_behind(tmp_path):
    spec = ModelSpec(source="tiny")
    model, _ = load_model_and_tokenizer(spec, tmp_path)

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_policy(model, BrokenTokenizer(), spec, tmp_path / "policy")
    assert list(tmp_path.iterdir()) == []


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="clarifylab_policy.json not found"):
        load_policy(tmp_path, tmp_path)
    (tmp_path / POLICY_FILENAME).write_text('{"format": 1, "weights": "lora_adapter"}')
    with pytest.raises(DataFormatError, match=r"clarifylab_policy.json is malformed"):
        load_policy(tmp_path, tmp_path)
    (tmp_path / POLICY_FILENAME).write_text(json.dumps({"format": 9, "weights": "full", "spec": {}}))
    with pytest.raises(DataFormatError, match="unsupported format=9"):
        load_policy(tmp_path, tmp_path)


# ---- bf16: a small LoRA delta survives stacking (unmerged stages), not a merge ----

def test_a_bf16_merge_loses_most_of_a_small_lora_delta(tmp_path, bf16_sft_policy):
    """Why stages stay unmerged: merged into bf16 weights, less than half of a 1e-3 relative delta remains."""
    import torch

    directory, _ = bf16_sft_policy(tmp_path)
    unmerged, _, _ = load_policy(directory, tmp_path)
    merged, _, _ = load_policy(directory, tmp_path, merge=True)
    layer = unmerged.base_model.model.model.layers[0].self_attn.q_proj
    delta = layer.get_delta_weight("default").float()
    kept = merged.model.layers[0].self_attn.q_proj.weight.float() - layer.base_layer.weight.float()
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert (kept - delta).norm() / delta.norm() > 0.5


def test_stacked_stages_start_exactly_at_the_saved_policy_and_round_trip_exactly(tmp_path, bf16_sft_policy):
    import torch
    from peft import PeftModel

    from clarifylab.models.adapter_stack import adapter_names, only_adapters, push_adapter
    from clarifylab.models.policy_io import load_policy_stack

    directory, tokenizer = bf16_sft_policy(tmp_path)
    sft, _, _ = load_policy(directory, tmp_path)  # what evaluate.py loads for the SFT row
    expected = _logits(sft, tokenizer)
    with sft.disable_adapter():
        assert not torch.equal(_logits(sft, tokenizer), expected)  # the small delta is visible unmerged

    stack, _, spec = load_policy_stack(directory, tmp_path)
    stack = push_adapter(stack, spec.lora)  # the next stage (ACT / DPO / an IRPO iteration) starts here
    assert adapter_names(stack) == ["stage0", "stage1"]
    assert {n.split(".")[-2] for n, p in stack.named_parameters() if p.requires_grad} == {"stage1"}
    stack.train()  # a frozen stage has no dropout: even in train mode the start is the SFT policy
    assert torch.equal(_logits(stack, tokenizer), expected)
    stack.eval()
    with torch.no_grad():  # "train" the top stage
        for name, parameter in stack.named_parameters():
            if parameter.requires_grad:
                parameter.add_(0.5)
    trained = _logits(stack, tokenizer)
    assert not torch.equal(trained, expected)
    with only_adapters(stack, ["stage0"]):  # the reference: every stage but the top one
        assert torch.equal(_logits(stack, tokenizer), expected)

    out = save_policy(stack, tokenizer, spec, tmp_path / "act")
    record = json.loads((out / POLICY_FILENAME).read_text())
    assert (record["weights"], record["adapters"]) == ("lora_stack", ["stage0", "stage1"])
    loaded, loaded_tok, _ = load_policy(out, tmp_path)
    assert isinstance(loaded, PeftModel) and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(_logits(loaded, loaded_tok), trained)
    again, _, _ = load_policy_stack(out, tmp_path)  # an IRPO iteration stacks on the last one
    assert adapter_names(push_adapter(again, spec.lora)) == ["stage0", "stage1", "stage2"]


@pytest.mark.parametrize("umask, mode", [(0o002, 0o775), (0o022, 0o755), (0o077, 0o700)])
def test_a_saved_policy_folder_follows_the_umask(tmp_path, umask, mode):
    # The old code forced 0755 whatever the umask (a group-writable umask 002 still gave 0755).
    import os
    import stat

    spec = ModelSpec(source="tiny", seed=2, lora=None)
    model, tokenizer = _trained(spec, tmp_path)
    previous = os.umask(umask)
    try:
        target = save_policy(model, tokenizer, spec, tmp_path / "runs" / "policy")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_link_final_policy_points_policy_at_the_last_stage_and_replaces_an_older_entry(tmp_path):
    from clarifylab.models.policy_io import link_final_policy

    for stage in ("iter_0", "iter_1"):
        (tmp_path / stage / "policy").mkdir(parents=True)
        (tmp_path / stage / "policy" / "name.txt").write_text(stage)
    (tmp_path / "policy").mkdir()                                   # e.g. a copy left by an earlier run
    link_final_policy(tmp_path, tmp_path / "iter_0" / "policy")
    link = link_final_policy(tmp_path, tmp_path / "iter_1" / "policy")
    assert link.is_symlink() and str(link.readlink()) == "iter_1/policy"
    assert (link / "name.txt").read_text() == "iter_1"
