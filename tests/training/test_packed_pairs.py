"""Shared-prefix packed forward: the layout (positions, mask, predictors) on hand-built pairs, equality with
the plain concatenated forward (log-probs and gradients; tiny model, LoRA, SmolLM2), and the fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from clarifylab.errors import ConfigError
from clarifylab.models import build_tiny_model_and_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.logprobs import concatenated_forward
from clarifylab.training.packed_pairs import (
    pack_pairs,
    packed_forward,
    packed_support,
    resolve_forward_mode,
    shared_prefix_length,
)
from test_logprobs import side  # a right-padded side batch (pad id 0), shared with the logprobs tests

X = IGNORE_INDEX


def random_pairs(seed: int, prompts=(7, 12, 4), chosen=(3, 5, 2), rejected=(4, 1, 6)):
    generator = torch.Generator().manual_seed(seed)
    heads = [torch.randint(5, 100, (n,), generator=generator).tolist() for n in prompts]
    c = [h + torch.randint(5, 100, (k,), generator=generator).tolist() for h, k in zip(heads, chosen)]
    r = [h + torch.randint(5, 100, (k,), generator=generator).tolist() for h, k in zip(heads, rejected)]
    starts = [len(h) for h in heads]
    return side(c, starts), side(r, starts)


def test_one_pair_layout_positions_restart_and_rejected_does_not_see_chosen():
    # prompt [11 12 13], chosen [21 22], rejected [31 32 33]
    chosen, rejected = side([[11, 12, 13, 21, 22]], [3]), side([[11, 12, 13, 31, 32, 33]], [3])
    packed = pack_pairs(chosen, rejected, pad_token_id=0)
    assert packed.input_ids.tolist() == [[11, 12, 13, 21, 22, 31, 32, 33]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5]]
    assert packed.unique_tokens == 8
    allowed = packed.allowed[0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],  # chosen: prompt + chosen so far
        [1, 1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 1, 0, 0],  # rejected: prompt + rejected so far, never the chosen tokens
        [1, 1, 1, 0, 0, 1, 1, 0],
        [1, 1, 1, 0, 0, 1, 1, 1],
    ]
    # predictors: 21 <- 13 (pos 2), 22 <- 21 (pos 3); 31 <- 13 (pos 2 again), 32 <- 31 (5), 33 <- 32 (6)
    kept = packed.keep[0].nonzero().flatten().tolist()
    assert kept == [2, 3, 5, 6]
    assert [kept[i] for i in packed.predictor.tolist()] == [2, 3, 2, 5, 6]
    assert packed.targets.tolist() == [21, 22, 31, 32, 33]
    assert packed.side_row.tolist() == [0, 0, 1, 1, 1]


def test_prompt_is_the_common_prefix_before_the_first_scored_token():
    assert shared_prefix_length([1, 2, 3, 4], [X, X, 3, 4], [1, 2, 3, 5], [X, X, X, 5]) == 2  # chosen scores from 2
    assert shared_prefix_length([1, 2, 3, 4], [X, X, X, 4], [1, 2, 9, 5], [X, X, X, 5]) == 2  # ids differ at 2
    with pytest.raises(ValueError, match="share no prompt token"):
        pack_pairs(side([[1, 2]], [1]), side([[3, 2]], [1]), pad_token_id=0)


def test_rows_are_first_fit_and_padding_only_attends_to_itself():
    chosen, rejected = random_pairs(0)  # segments of 7+3+4 = 14, 12+5+1 = 18 and 4+2+6 = 12 tokens
    packed = pack_pairs(chosen, rejected, pad_token_id=0, row_tokens=26)
    assert packed.input_ids.shape == (2, 26)  # [14 + 12] and [18 + 8 padding]
    assert packed.unique_tokens == 44
    assert torch.equal(packed.allowed[1, 18:, 18:], torch.eye(8, dtype=torch.bool))
    assert not packed.allowed[1, 18:, :18].any() and not packed.allowed[1, :18, 18:].any()
    assert not packed.allowed[0, 14:, :14].any()  # the second segment of row 0 does not see the first
    assert packed.input_ids[1, 18:].tolist() == [0] * 8
    default = pack_pairs(chosen, rejected, pad_token_id=0)  # rows as long as the longest segment (18): one each
    assert default.input_ids.shape == (3, 18) and default.unique_tokens == 44
    short = {key: value[[0, 2]] for key, value in chosen.items()}, {key: value[[0, 2]] for key, value in rejected.items()}
    assert pack_pairs(*short, pad_token_id=0).input_ids.shape == (2, 14)  # 14 + 12 > 14: still one row each


def scored_with_grads(model, forward, chosen, rejected):
    """``(PairLogps, flat gradients)`` of ``chosen_logps.sum() - 0.5 * rejected_logps.sum()`` under ``forward``."""
    model.zero_grad()
    scored = forward(model, chosen, rejected, 0)
    (scored.chosen_logps.sum() - 0.5 * scored.rejected_logps.sum()).backward()
    return scored, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def assert_equal_to_concatenated(forward, implementation: str) -> None:
    """``forward`` on the tiny model under ``implementation`` equals ``concatenated_forward``: log-probs (1e-5),
    token counts and gradients."""
    model, _ = build_tiny_model_and_tokenizer(seed=3)
    model.config._attn_implementation = implementation
    model.train(False)
    chosen, rejected = random_pairs(1)
    (plain, plain_grads), (other, other_grads) = (
        scored_with_grads(model, f, chosen, rejected) for f in (concatenated_forward, forward))
    for a, b in zip(plain, other):
        assert a.dtype == b.dtype
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert other.chosen_tokens.tolist() == [3, 5, 2] and other.rejected_tokens.tolist() == [4, 1, 6]
    torch.testing.assert_close(other_grads, plain_grads, rtol=1e-4, atol=1e-6)


def tiny_lora_model():
    """The tiny model under LoRA with non-zero ``lora_B`` (so adapters on and off differ), in eval mode."""
    from clarifylab.models import LoraSpec, apply_lora

    base, _ = build_tiny_model_and_tokenizer(seed=0)
    model = apply_lora(base, LoraSpec(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    return model.eval()


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("row_tokens", [None, 1, 4096])  # rows as long as the longest pair; one each; all in one
def test_equal_to_the_concatenated_forward_in_logps_and_gradients(implementation, row_tokens):
    assert_equal_to_concatenated(lambda *a: packed_forward(*a, row_tokens=row_tokens), implementation)


def test_under_lora_policy_and_adapter_disabled_reference_both_match():
    model = tiny_lora_model()
    chosen, rejected = random_pairs(2)
    assert resolve_forward_mode(model, "auto") == "packed"
    with torch.no_grad():
        for adapters_on in (True, False):
            if adapters_on:
                plain, packed = (f(model, chosen, rejected, 0) for f in (concatenated_forward, packed_forward))
            else:
                with model.disable_adapter():
                    plain, packed = (f(model, chosen, rejected, 0) for f in (concatenated_forward, packed_forward))
            torch.testing.assert_close(packed.chosen_logps, plain.chosen_logps, rtol=0, atol=1e-5)
            torch.testing.assert_close(packed.rejected_logps, plain.rejected_logps, rtol=0, atol=1e-5)


def test_attention_without_custom_masks_falls_back_and_says_so_once(caplog):
    from clarifylab.training.preference_module import PreferenceModule

    model, _ = build_tiny_model_and_tokenizer(seed=0)
    model.config._attn_implementation = "flash_attention_2"  # cannot take a 4-D mask (not loadable on CPU)
    assert "flash_attention_2" in packed_support(model)
    with pytest.raises(ConfigError, match="trainer.forward=packed: attention implementation 'flash_attention_2'"):
        resolve_forward_mode(model, "packed")
    with pytest.raises(ConfigError, match="trainer.forward='fast'"):
        resolve_forward_mode(model, "fast")
    with caplog.at_level(logging.WARNING, logger="clarifylab.training.packed_pairs"):
        module = PreferenceModule(model, lr=1e-3, beta=0.1, forward="auto")
        assert module.forward_mode == "concatenated"
        chosen, rejected = random_pairs(0)
        model.config._attn_implementation = "sdpa"  # (to run a forward on CPU) the mode was fixed at construction
        module.pair_forward(model, chosen, rejected)
        module.pair_forward(model, chosen, rejected)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["preference forward: concatenated (plain) path, because attention implementation "
                        "'flash_attention_2' does not take a custom 4-D mask (packing needs one of ['eager', 'sdpa'])"]
    sliding, _ = build_tiny_model_and_tokenizer(seed=0)
    sliding.config.sliding_window = 16
    assert resolve_forward_mode(sliding, "auto") == "concatenated"


@pytest.mark.slow
def test_smollm2_packed_equals_concatenated_on_chat_pairs(tmp_path):
    from clarifylab.models import LoraSpec, ModelSpec
    from clarifylab.models.loading import load_model_and_tokenizer
    from clarifylab.training.preference_data import PreferenceCollator, PreferencePair, tokenize_pair

    spec = ModelSpec(source="smollm2_gguf", dtype="float32", lora=LoraSpec(enabled=False))
    model, tokenizer = load_model_and_tokenizer(spec, Path(__file__).resolve().parents[2] / ".cache")
    prompt = [{"role": "system", "content": "Answer from the table or ask one question."},
              {"role": "user", "content": "Revenue 2019: 12; 2020: 15; 2021: 19.\nWhat was the revenue?"}]
    pairs = [PreferencePair(f"p{i}", prompt[:1] + [{"role": "user", "content": prompt[1]["content"] + "?" * i}],
                            [{"role": "assistant", "content": "Which year do you mean?"}],
                            [{"role": "assistant", "content": f"It was {12 + 3 * i}."}]) for i in range(3)]
    batch = PreferenceCollator(tokenizer.pad_token_id)([tokenize_pair(p, tokenizer, 512) for p in pairs])
    with torch.no_grad():
        plain = concatenated_forward(model, batch.chosen, batch.rejected, tokenizer.pad_token_id)
        packed = packed_forward(model, batch.chosen, batch.rejected, tokenizer.pad_token_id)
    assert resolve_forward_mode(model, "auto") == "packed"
    torch.testing.assert_close(packed.chosen_logps, plain.chosen_logps, rtol=0, atol=1e-5)
    torch.testing.assert_close(packed.rejected_logps, plain.rejected_logps, rtol=0, atol=1e-5)
    assert torch.equal(packed.chosen_tokens, plain.chosen_tokens)
