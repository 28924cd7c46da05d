"""The group-relative policy-gradient loss of online SML, against hand-computed values."""

import math

import pytest
import torch

from clarifylab.models.tiny import build_tiny_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX, tokenize_conversation
from clarifylab.training.group_pg_module import pad_features
from clarifylab.training.policy_gradient import (
    discounted_success_reward,
    group_advantages,
    policy_gradient_loss,
    token_logprobs,
)


def test_discounted_reward_per_turn():
    assert discounted_success_reward(1, 0.7) == 1.0
    assert discounted_success_reward(2, 0.7) == pytest.approx(0.7)
    assert discounted_success_reward(4, 0.7) == pytest.approx(0.343)
    assert discounted_success_reward(None, 0.7) == 0.0
    with pytest.raises(ValueError):
        discounted_success_reward(0, 0.7)


def test_group_advantages_hand_computed_and_zero_for_equal_rewards():
    # group 0: successes at turns 1 and 2, two failures -> rewards 1, 0.7, 0, 0 (gamma 0.7)
    rewards = [discounted_success_reward(k, 0.7) for k in (1, 2, None, None)] + [0.0, 0.0] + [0.49, 0.49]
    groups = [0, 0, 0, 0, 1, 1, 2, 2]
    adv = group_advantages(rewards, groups, eps=0.0)
    # mean 0.425; population variance ((0.575)^2 + 0.275^2 + 2 * 0.425^2) / 4 = 0.191875
    std = math.sqrt(0.191875)
    assert adv[:4] == pytest.approx([0.575 / std, 0.275 / std, -0.425 / std, -0.425 / std])
    assert adv[4:] == [0.0, 0.0, 0.0, 0.0]  # all-equal groups (all failed / all equal successes): no signal


def test_policy_gradient_loss_hand_computed_with_masking():
    # 2 trajectories x 4 positions; position 1 of row 0 and positions 0, 3 of row 1 are teacher/user tokens
    logps = torch.tensor([[-1.0, -9.0, -0.5, -2.0], [-7.0, -0.25, -0.75, -5.0]], requires_grad=True)
    mask = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]])
    adv = torch.tensor([2.0, -1.0])
    loss, n = policy_gradient_loss(logps, mask, adv)
    # L = -(2 * (-1 - 0.5 - 2) + (-1) * (-0.25 - 0.75)) / 5 = -(-7 + 1) / 5 = 1.2
    assert int(n) == 5
    assert loss.item() == pytest.approx(1.2)
    loss.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-0.4, 0.0, -0.4, -0.4, 0.0, 0.2, 0.2, 0.0])
    zero, _ = policy_gradient_loss(logps, mask, torch.zeros(2))
    assert zero.item() == 0.0


def test_only_student_turns_are_targets():
    """Teacher feedback (a user turn) and the prompt never enter the loss: only the student's tokens do."""
    tokenizer = build_tiny_tokenizer()
    messages = [{"role": "system", "content": "answer the question about the table ."},
                {"role": "user", "content": "what is the revenue ?"},
                {"role": "assistant", "content": "the revenue is 5 . 2"},
                {"role": "user", "content": "check the year"},
                {"role": "assistant", "content": "the revenue is 2 . 5"}]
    feature = tokenize_conversation(messages, tokenizer, max_length=256)
    batch = pad_features([feature], pad_id=0)
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    targets = batch["input_ids"][:, 1:][mask].tolist()
    student = tokenizer("the revenue is 5 . 2<|im_end|>the revenue is 2 . 5<|im_end|>",
                        add_special_tokens=False)["input_ids"]
    assert targets == student
    # logits that change only at teacher positions leave the loss unchanged
    vocab = len(tokenizer)
    logits = torch.randn(1, batch["input_ids"].shape[1], vocab, generator=torch.Generator().manual_seed(0))
    base, _ = policy_gradient_loss(token_logprobs(logits, batch["input_ids"]), mask, torch.tensor([1.0]))
    shifted = logits.clone()
    shifted[0, :-1][~mask[0]] += torch.randn(int((~mask[0]).sum()), vocab)
    moved, _ = policy_gradient_loss(token_logprobs(shifted, batch["input_ids"]), mask, torch.tensor([1.0]))
    assert float(moved) == pytest.approx(float(base))
