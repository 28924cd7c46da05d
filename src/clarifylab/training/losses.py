"""Pure loss functions of the trainers (tensors in, tensors out; no module state).

Shapes: ``B`` batch (pairs, for the preference losses), ``T`` sequence length, ``V`` vocabulary size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clarifylab.errors import ConfigError
from clarifylab.training.chat_tokenize import IGNORE_INDEX


def masked_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-mean negative log-likelihood of the labelled tokens (the SFT loss).

    ``loss = -(1/N) * sum_{(b,t): labels[b,t+1] != IGNORE} log softmax(logits[b,t])[labels[b,t+1]]``,
    i.e. the logits at position ``t`` predict the token at ``t + 1`` (the shift happens here, the labels
    are aligned with the inputs), averaged over the ``N`` labelled target tokens of the whole batch.

    Only the labelled positions are gathered before the (float32) log-softmax, so memory grows with
    ``N x V``, not ``B x T x V``.

    Args:
        logits: ``(B, T, V)`` model outputs, any float dtype.
        labels: ``(B, T)`` int64 target ids aligned with the inputs; ``IGNORE_INDEX`` (-100) outside
            the loss mask.

    Returns:
        ``(loss, n_tokens)``: scalar float32 mean NLL in nats per token (0, still attached to the graph,
        when ``N = 0``) and the int64 scalar ``N``.
    """
    targets = labels[:, 1:]  # (B, T-1)
    keep = targets != IGNORE_INDEX  # (B, T-1)
    n_tokens = keep.sum()
    if int(n_tokens) == 0:
        return logits.sum() * 0.0, n_tokens
    predicted = logits[:, :-1][keep].float()  # (N, V)
    loss = F.cross_entropy(predicted, targets[keep], reduction="mean")
    return loss, n_tokens


PREFERENCE_LOSS_TYPES = ("sigmoid", "ipo", "hinge")


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair preference losses and implicit rewards (DPO, Rafailov et al. 2023; ACT eq. 1).

    With the log-ratio difference ``h = (log pi(y_w|p) - log pi(y_l|p)) - (log ref(y_w|p) - log ref(y_l|p))``:

    - ``sigmoid`` (DPO eq. 7 / ACT eq. 1): ``-(1 - eps) log sigma(beta h) - eps log sigma(-beta h)``; with
      ``label_smoothing = eps > 0`` this is conservative DPO (the preference label flips with probability eps).
      At ``h = 0`` (policy == reference) the loss is ``ln 2``.
    - ``ipo`` (Azar et al. 2023, eq. 17): ``(h_avg - 1/(2 beta))^2`` — regresses the log-ratio difference to a
      finite target instead of pushing it to infinity — with *length-averaged* log-probs, as TRL implements
      IPO: ``h_avg = (log pi(y_w|p) - log ref(y_w|p)) / |y_w| - (log pi(y_l|p) - log ref(y_l|p)) / |y_l|``,
      ``|y|`` the scored tokens of a side (``chosen_lengths`` / ``rejected_lengths``, required). Its rewards
      are ``beta`` times the averaged log-ratios too. Summed log-probs would make the target ``1/(2 beta)``
      a per-sequence margin that grows easier to meet with length.
    - ``hinge`` (SLiC, Zhao et al. 2023): ``relu(1 - beta h)``.

    The reference log-probs are constants (detached here). The implicit rewards are
    ``r(p, y) = beta (log pi(y|p) - log ref(y|p))`` (DPO eq. 5 / ACT eq. 2's ``R``), detached.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``(B,)`` summed log-probs of the winning / losing
            continuation under the policy (see ``training.logprobs.sequence_logprobs``).
        ref_chosen_logps, ref_rejected_logps: ``(B,)`` the same under the reference model.
        beta: ``> 0``, strength of the KL regularisation towards the reference (ACT: 0.01).
        loss_type: ``sigmoid`` | ``ipo`` | ``hinge``.
        label_smoothing: ``eps`` in ``[0, 0.5)``; only for ``sigmoid``.
        chosen_lengths, rejected_lengths: ``(B,)`` integer scored-token counts of each side (``ipo`` only;
            a count of 0 is treated as 1).

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``(B,)`` float32; only ``losses`` carries
        gradient (towards the policy log-probs).
    """
    if loss_type not in PREFERENCE_LOSS_TYPES:
        raise ConfigError(f"trainer.loss_type={loss_type!r} is not one of {list(PREFERENCE_LOSS_TYPES)}")
    if not beta > 0:
        raise ConfigError(f"trainer.beta={beta!r} must be positive")
    if not 0 <= label_smoothing < 0.5:
        raise ConfigError(f"trainer.label_smoothing={label_smoothing!r} must be in [0, 0.5)")
    if label_smoothing and loss_type != "sigmoid":
        raise ConfigError(f"trainer.label_smoothing only applies to loss_type=sigmoid, not {loss_type!r}: set it to 0")
    policy_chosen, policy_rejected = policy_chosen_logps.float(), policy_rejected_logps.float()
    ref_chosen, ref_rejected = ref_chosen_logps.detach().float(), ref_rejected_logps.detach().float()
    if loss_type == "ipo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("preference_loss(loss_type='ipo') length-averages: pass chosen_lengths and "
                             "rejected_lengths (the scored tokens of each side)")
        chosen_n, rejected_n = chosen_lengths.clamp(min=1).float(), rejected_lengths.clamp(min=1).float()
        policy_chosen, ref_chosen = policy_chosen / chosen_n, ref_chosen / chosen_n
        policy_rejected, ref_rejected = policy_rejected / rejected_n, ref_rejected / rejected_n
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)  # (B,)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h) * (1 - label_smoothing) - F.logsigmoid(-beta * h) * label_smoothing
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = F.relu(1 - beta * h)
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards


def nll_on_chosen(chosen_logps_sum: torch.Tensor, chosen_token_counts: torch.Tensor) -> torch.Tensor:
    """Length-normalised negative log-likelihood of each winning continuation (the IRPO NLL term).

    ``nll_b = -log pi(y_w,b | p_b) / |y_w,b|`` with ``|y_w,b|`` the number of scored (labelled) tokens
    of the continuation; IRPO (Pang et al. 2024) adds ``alpha * nll`` to the DPO loss (the caller
    applies ``alpha``). The IRPO paper divides by the prompt+response length; dividing by the scored
    tokens keeps the term a per-token NLL whatever the prompt length (as TRL's ``rpo_alpha`` does).

    Args:
        chosen_logps_sum: ``(B,)`` summed log-probs of the winning continuation under the policy.
        chosen_token_counts: ``(B,)`` integer number of tokens in that sum (a row with 0 gives 0).

    Returns:
        ``(B,)`` float32 NLL in nats per token.
    """
    return -chosen_logps_sum.float() / chosen_token_counts.clamp(min=1).float()


def preference_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> dict[str, torch.Tensor]:
    """Batch means of the implicit rewards (see :func:`preference_loss`), detached scalars.

    Returns:
        ``reward_margin``: mean of ``r_w - r_l`` (ACT's checkpoint-selection metric on validation pairs);
        ``reward_accuracy``: fraction of pairs with ``r_w > r_l`` (ties count as wrong);
        ``rewards_chosen`` / ``rewards_rejected``: mean ``r_w`` / ``r_l``.
    """
    chosen, rejected = chosen_rewards.detach().float(), rejected_rewards.detach().float()
    return {
        "reward_margin": (chosen - rejected).mean(),
        "reward_accuracy": (chosen > rejected).float().mean(),
        "rewards_chosen": chosen.mean(),
        "rewards_rejected": rejected.mean(),
    }
