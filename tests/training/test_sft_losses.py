"""masked_token_nll: hand-computed values, token (not sequence) averaging, agreement with transformers."""

from __future__ import annotations

import math

import pytest
import torch

from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.losses import masked_token_nll


def test_hand_computed_two_token_loss():
    # V = 2. Position 0 predicts token 1 with p = 1/2; position 1 predicts token 2 with p(1) = 1/4.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])  # (1, 3, 2)
    labels = torch.tensor([[1, 0, 1]])  # label 0 is never a target (nothing predicts position 0)
    loss, n_tokens = masked_token_nll(logits, labels)
    assert int(n_tokens) == 2
    assert loss.item() == pytest.approx((math.log(2) + math.log(4)) / 2, abs=1e-6)


def test_ignored_labels_and_token_mean_over_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX],
                           [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
    loss, n_tokens = masked_token_nll(logits, labels)
    logp = torch.log_softmax(logits, dim=-1)
    terms = [-logp[0, 1, 3], -logp[0, 2, 4], -logp[1, 0, 1]]
    assert int(n_tokens) == 3
    assert loss.item() == pytest.approx(float(sum(terms) / 3), abs=1e-6)  # not the mean of per-row means


def test_no_labelled_token_gives_zero_with_a_gradient_path():
    logits = torch.randn(1, 4, 3, requires_grad=True)
    loss, n_tokens = masked_token_nll(logits, torch.full((1, 4), IGNORE_INDEX))
    assert int(n_tokens) == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_bfloat16_logits_are_scored_in_float32():
    torch.manual_seed(1)
    logits = torch.randn(1, 6, 11)
    labels = torch.tensor([[IGNORE_INDEX, 2, 3, 4, 5, 6]])
    loss_bf16, _ = masked_token_nll(logits.bfloat16(), labels)
    loss_fp32, _ = masked_token_nll(logits.bfloat16().float(), labels)
    assert loss_bf16.dtype == torch.float32 and loss_bf16.item() == pytest.approx(loss_fp32.item(), abs=1e-6)


def test_matches_the_transformers_causal_lm_loss():
    from clarifylab.models.tiny import build_tiny_model_and_tokenizer

    model, _ = build_tiny_model_and_tokenizer(seed=0)
    input_ids = torch.tensor([[5, 9, 14, 22, 31, 40], [7, 8, 9, 10, 11, 12]])
    labels = input_ids.clone()
    labels[0, :3] = IGNORE_INDEX
    labels[1, :5] = IGNORE_INDEX
    with torch.no_grad():
        output = model(input_ids=input_ids, labels=labels)
    loss, n_tokens = masked_token_nll(output.logits, labels)
    assert int(n_tokens) == 4
    assert loss.item() == pytest.approx(output.loss.item(), abs=1e-5)
