"""Group-relative policy gradient for multi-turn dialogues: discounted binary rewards, group-normalised
advantages and the REINFORCE-style loss on the policy's own tokens (no KL term, no ratio clipping).

Method-free: a method supplies trajectories (token ids, a mask of the policy's tokens, a reward, a group id);
these pure functions turn them into a loss. Shapes: ``B`` trajectories, ``T`` positions, ``V`` vocabulary.

Equations (the notation of group-relative RL, e.g. GRPO, Shao et al. 2024, Eq. 3, without its clip and KL):

- reward of a trajectory that succeeds at policy turn ``k`` (1-based): ``r = gamma ** (k - 1)``, else ``0``
  (:func:`discounted_success_reward`; SML's per-turn discount, gamma = 0.7);
- advantage within a group ``g`` of ``G`` trajectories: ``A_i = (r_i - mean_g r) / (std_g r + eps)``, with the
  population std (divide by ``G``); a group whose rewards are all equal has ``A = 0`` exactly
  (:func:`group_advantages`);
- loss: ``L = -(1 / N) * sum_i A_i * sum_t m_it * log pi(y_it | y_i<t)``, ``N = sum_it m_it`` the number of
  policy tokens in the batch (token-mean, so long and short dialogues weigh per token;
  :func:`policy_gradient_loss`). ``m`` is 1 on the policy's tokens only: the other speakers' turns
  (teacher feedback, user shards) and the prompt are context, never targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def discounted_success_reward(success_turn: int | None, gamma: float) -> float:
    """``gamma ** (success_turn - 1)`` when the trajectory succeeded at policy turn ``success_turn`` (1-based),
    ``0.0`` when it never did (``None``).

    Raises:
        ValueError: ``success_turn < 1`` or ``gamma`` outside ``(0, 1]``.
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"discount gamma must be in (0, 1], got {gamma}")
    if success_turn is None:
        return 0.0
    if success_turn < 1:
        raise ValueError(f"success_turn is 1-based, got {success_turn}")
    return float(gamma ** (success_turn - 1))


def group_advantages(rewards: Sequence[float], groups: Sequence[int], eps: float = 1e-6) -> list[float]:
    """``(r_i - mean_g) / (std_g + eps)`` per trajectory, mean and population std over its group ``g``.

    Args:
        rewards: one reward per trajectory.
        groups: the group id of each trajectory (the problem it was sampled for).
        eps: keeps the division finite; a group with equal rewards gets exactly ``0.0``.

    Returns:
        One advantage per trajectory, in input order.
    """
    if len(rewards) != len(groups):
        raise ValueError(f"group_advantages: {len(rewards)} rewards but {len(groups)} group ids")
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    advantages = [0.0] * len(rewards)
    for indices in members.values():
        values = [float(rewards[i]) for i in indices]
        mean = sum(values) / len(values)
        if all(v == values[0] for v in values):
            continue  # no signal in this group: every advantage stays 0
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        for i, v in zip(indices, values):
            advantages[i] = (v - mean) / (std + eps)
    return advantages


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``log pi(x_t | x_<t)`` for ``t >= 1``: ``(B, T-1)`` float32 from ``(B, T, V)`` logits and ``(B, T)`` ids.

    With ``mask`` (``(B, T-1)``, aligned with the result) only the masked positions are computed (a float32
    ``N x V`` slice instead of ``B x T x V``: the memory of a long multi-turn batch); the others are 0.
    """
    import torch

    targets = input_ids[:, 1:]
    keep = torch.ones_like(targets, dtype=torch.bool) if mask is None else mask.bool()
    scored = logits[:, :-1][keep].float()  # (N, V)
    values = scored.gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scored, dim=-1)
    return torch.zeros(keep.shape, dtype=values.dtype, device=logits.device).masked_scatter(keep, values)


def policy_gradient_loss(token_logps: torch.Tensor, mask: torch.Tensor,
                         advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``L = -(1/N) sum_i A_i sum_t m_it log pi_it`` (module docstring).

    Args:
        token_logps: ``(B, T')`` log-probabilities of the tokens (e.g. :func:`token_logprobs`, ``T' = T - 1``).
        mask: ``(B, T')`` 1 on the policy's own tokens (aligned with ``token_logps``), 0 elsewhere.
        advantages: ``(B,)`` one advantage per trajectory (constants: no gradient flows through them).

    Returns:
        ``(loss, n_tokens)``: the scalar loss (0 with a graph when no token is masked in) and ``N``.
    """
    if token_logps.shape != mask.shape:
        raise ValueError(f"token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} differ")
    if advantages.shape != token_logps.shape[:1]:
        raise ValueError(f"advantages {tuple(advantages.shape)} must be ({token_logps.shape[0]},)")
    weights = mask.to(token_logps.dtype)
    n_tokens = weights.sum()
    per_row = (token_logps * weights).sum(dim=-1)  # (B,)
    total = -(advantages.detach().to(per_row.dtype) * per_row).sum()
    return total / n_tokens.clamp(min=1.0), n_tokens.long()
