"""Preference losses (DPO sigmoid / IPO / hinge), the IRPO NLL term and reward metrics: exact values and
gradients on hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from clarifylab.errors import ConfigError
from clarifylab.training.losses import nll_on_chosen, preference_loss, preference_metrics

# Two pairs, beta = 0.5. Row 0: h = (-1 - -3) - (-2 - -2) = 2; row 1: h = (-4 - -2) - (-3 - -3) = -2.
POLICY_CHOSEN = torch.tensor([-1.0, -4.0])
POLICY_REJECTED = torch.tensor([-3.0, -2.0])
REF_CHOSEN = torch.tensor([-2.0, -3.0])
REF_REJECTED = torch.tensor([-2.0, -3.0])
BETA = 0.5
LENGTHS = torch.tensor([1, 1])  # one token per side: IPO's length average is then the sum


def hand_written(loss_type: str, pc, pr, rc, rr, beta: float, eps: float = 0.0, nc=None, nr=None) -> torch.Tensor:
    """The three losses written out with elementary ops (no logsigmoid/relu); IPO length-averages by nc / nr."""
    h = (pc - pr) - (rc.detach() - rr.detach())
    if loss_type == "sigmoid":
        return -(1 - eps) * torch.log(1 / (1 + torch.exp(-beta * h))) - eps * torch.log(1 / (1 + torch.exp(beta * h)))
    if loss_type == "ipo":
        h = (pc - rc.detach()) / nc - (pr - rr.detach()) / nr
        return (h - 1 / (2 * beta)) * (h - 1 / (2 * beta))
    return torch.where(1 - beta * h > 0, 1 - beta * h, torch.zeros_like(h))


def test_sigmoid_loss_is_exactly_ln2_when_policy_equals_reference():
    logps = torch.randn(6, dtype=torch.float32) * 30 - 50
    other = torch.randn(6, dtype=torch.float32) * 30 - 50
    losses, chosen_rewards, rejected_rewards = preference_loss(logps, other, logps.clone(), other.clone(), beta=0.01)
    assert torch.allclose(losses, torch.full((6,), math.log(2)), atol=1e-7, rtol=0)
    assert chosen_rewards.abs().max() == 0 and rejected_rewards.abs().max() == 0


def test_hand_computed_values_of_the_three_losses_and_the_rewards():
    expected = {
        "sigmoid": [math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))],  # -log sigma(+-beta h), beta h = +-1
        "ipo": [(2 - 1) ** 2, (-2 - 1) ** 2],  # (h - 1/(2 beta))^2 with 1/(2 beta) = 1
        "hinge": [0.0, 2.0],  # relu(1 - beta h)
    }
    for loss_type, values in expected.items():
        losses, chosen, rejected = preference_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, BETA,
                                                   loss_type=loss_type, chosen_lengths=LENGTHS,
                                                   rejected_lengths=LENGTHS)
        assert losses.tolist() == pytest.approx(values, abs=1e-6), loss_type
        assert chosen.tolist() == [0.5, -0.5] and rejected.tolist() == [-0.5, 0.5]  # beta (pi - ref)
    smoothed, _, _ = preference_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, BETA, label_smoothing=0.1)
    assert smoothed[0].item() == pytest.approx(0.9 * math.log(1 + math.exp(-1)) + 0.1 * math.log(1 + math.exp(1)),
                                               abs=1e-6)


@pytest.mark.parametrize(("loss_type", "eps"), [("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("hinge", 0.0)])
def test_gradients_match_autograd_of_the_hand_written_formula(loss_type, eps):
    generator = torch.Generator().manual_seed(3)
    values = [torch.randn(16, generator=generator, dtype=torch.float64) * 5 - 20 for _ in range(4)]
    beta = 0.3
    ours = [v.clone().requires_grad_(True) for v in values]
    theirs = [v.clone().requires_grad_(True) for v in values]
    nc, nr = (torch.randint(1, 30, (16,), generator=generator) for _ in range(2))
    losses, _, _ = preference_loss(*ours, beta=beta, loss_type=loss_type, label_smoothing=eps, chosen_lengths=nc,
                                   rejected_lengths=nr)
    losses.sum().backward()
    hand_written(loss_type, *theirs, beta=beta, eps=eps, nc=nc, nr=nr).sum().backward()
    for mine, reference in zip(ours[:2], theirs[:2]):
        assert torch.allclose(mine.grad, reference.grad, rtol=1e-5, atol=1e-5), loss_type  # we compute in float32
        assert mine.grad.abs().max() > 0
    assert ours[2].grad is None and ours[3].grad is None  # the reference is a constant


def test_sigmoid_gradient_is_acts_eq2_weighting():
    """d loss / d log pi(y_w) = -beta * sigma(R(y_l) - R(y_w)) (ACT eq. 2), and the opposite for y_l."""
    chosen = POLICY_CHOSEN.clone().requires_grad_(True)
    rejected = POLICY_REJECTED.clone().requires_grad_(True)
    losses, chosen_rewards, rejected_rewards = preference_loss(chosen, rejected, REF_CHOSEN, REF_REJECTED, BETA)
    losses.sum().backward()
    weight = torch.sigmoid(rejected_rewards - chosen_rewards)
    assert torch.allclose(chosen.grad, -BETA * weight, atol=1e-7)
    assert torch.allclose(rejected.grad, BETA * weight, atol=1e-7)


def test_nll_on_chosen_is_length_normalised():
    nll = nll_on_chosen(torch.tensor([-6.0, -1.5, 0.0]), torch.tensor([3, 1, 0]))
    assert nll.tolist() == [2.0, 1.5, 0.0]


def test_metrics_mean_margin_and_strict_accuracy():
    metrics = preference_metrics(torch.tensor([1.0, 0.5, 0.2, -1.0]), torch.tensor([0.0, 0.5, 0.4, -2.0]))
    assert metrics["reward_margin"].item() == pytest.approx((1.0 + 0.0 - 0.2 + 1.0) / 4)
    assert metrics["reward_accuracy"].item() == 0.5  # the tie does not count
    assert metrics["rewards_chosen"].item() == pytest.approx(0.175)
    assert metrics["rewards_rejected"].item() == pytest.approx(-0.275)


def test_bad_options_fail_naming_them():
    args = (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)
    with pytest.raises(ConfigError, match="trainer.loss_type"):
        preference_loss(*args, beta=0.1, loss_type="kto")
    with pytest.raises(ConfigError, match="trainer.beta"):
        preference_loss(*args, beta=0.0)
    with pytest.raises(ConfigError, match="label_smoothing only applies"):
        preference_loss(*args, beta=0.1, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ConfigError, match="trainer.label_smoothing"):
        preference_loss(*args, beta=0.1, label_smoothing=0.5)


def test_ipo_length_averages_the_log_ratios_and_sigmoid_dpo_sums_them():
    """Azar et al. eq. 17 as TRL implements it: h = (log-ratio of y_w) / |y_w| - (log-ratio of y_l) / |y_l|.
    Pair: policy (-6, -12), reference (-8, -10), |y_w| = 2, |y_l| = 4, beta = 0.25 -> 1/(2 beta) = 2.
    Averaged: h = (-6 + 8) / 2 - (-12 + 10) / 4 = 1 + 0.5 = 1.5 -> loss (1.5 - 2)^2 = 0.25; rewards 0.25 * 1 and
    0.25 * -0.5. Summed (the old code) would give h = 2 + 2 = 4 -> loss 4."""
    args = (torch.tensor([-6.0]), torch.tensor([-12.0]), torch.tensor([-8.0]), torch.tensor([-10.0]))
    lengths = {"chosen_lengths": torch.tensor([2]), "rejected_lengths": torch.tensor([4])}
    losses, chosen, rejected = preference_loss(*args, beta=0.25, loss_type="ipo", **lengths)
    assert losses.tolist() == [0.25] and chosen.tolist() == [0.25] and rejected.tolist() == [-0.125]
    sigmoid, chosen, _ = preference_loss(*args, beta=0.25, **lengths)  # summed: beta h = 0.25 * 4 = 1
    assert sigmoid.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-7) and chosen.tolist() == [0.5]
    with pytest.raises(ValueError, match="chosen_lengths"):
        preference_loss(*args, beta=0.25, loss_type="ipo")
