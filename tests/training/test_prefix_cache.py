"""KV-cache shared-prefix forward (``trainer.forward=prefix_cache``): equal to the plain concatenated forward in
log-probs and gradients (tiny model, LoRA policy and adapter-disabled reference), refused under gradient
checkpointing, and selected by the preference module."""

from __future__ import annotations

import pytest
import torch

from clarifylab.errors import ConfigError
from clarifylab.models import build_tiny_model_and_tokenizer
from clarifylab.training.logprobs import concatenated_forward
from clarifylab.training.packed_pairs import resolve_forward_mode
from clarifylab.training.prefix_cache import prefix_cache_forward
from test_packed_pairs import assert_equal_to_concatenated, random_pairs, tiny_lora_model


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_equal_to_the_concatenated_forward_in_logps_and_gradients(implementation):
    assert_equal_to_concatenated(prefix_cache_forward, implementation)


def test_under_lora_policy_and_adapter_disabled_reference_both_match():
    model = tiny_lora_model()
    chosen, rejected = random_pairs(2)
    assert resolve_forward_mode(model, "prefix_cache") == "prefix_cache"
    with torch.no_grad():
        on = [f(model, chosen, rejected, 0) for f in (concatenated_forward, prefix_cache_forward)]
        with model.disable_adapter():
            off = [f(model, chosen, rejected, 0) for f in (concatenated_forward, prefix_cache_forward)]
    for plain, cached in (on, off):
        torch.testing.assert_close(cached.chosen_logps, plain.chosen_logps, rtol=0, atol=1e-5)
        torch.testing.assert_close(cached.rejected_logps, plain.rejected_logps, rtol=0, atol=1e-5)
    assert not torch.allclose(on[0].chosen_logps, off[0].chosen_logps)  # the adapters matter


def test_refused_under_gradient_checkpointing():
    model, _ = build_tiny_model_and_tokenizer(seed=0)
    model.activation_checkpointing_enable()
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        resolve_forward_mode(model, "prefix_cache")


def test_the_preference_module_scores_with_it():
    from clarifylab.training.preference_module import PreferenceModule

    model, _ = build_tiny_model_and_tokenizer(seed=3)
    model.train(False)
    chosen, rejected = random_pairs(4)
    module = PreferenceModule(model, lr=1e-4, beta=0.1, reference="copy", forward="prefix_cache")
    assert module.forward_mode == "prefix_cache"
    with torch.no_grad():
        plain = concatenated_forward(model, chosen, rejected, 0)
        cached = module.pair_forward(model, chosen, rejected)
    torch.testing.assert_close(cached.chosen_logps, plain.chosen_logps, rtol=0, atol=1e-5)
