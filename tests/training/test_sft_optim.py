"""AdamW parameter groups and the warmup + decay schedules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from clarifylab.errors import ConfigError
from clarifylab.training.optim import build_optimizer_and_scheduler, parameter_groups, warmup_steps


def small_model() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    model[2].requires_grad_(False)  # frozen, like a LoRA base
    return model


def lrs(schedule: str, total: int = 10, warmup_ratio: float = 0.2) -> list[float]:
    config = build_optimizer_and_scheduler(small_model().named_parameters(), lr=1.0, weight_decay=0.1,
                                           warmup_ratio=warmup_ratio, lr_schedule=schedule, total_steps=total)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_only_trainable_parameters_are_optimised_and_vectors_do_not_decay():
    groups = parameter_groups(small_model().named_parameters(), weight_decay=0.1)
    assert [len(group["params"]) for group in groups] == [1, 3]  # Linear(4,3).weight | its bias + LayerNorm w, b
    assert [group["weight_decay"] for group in groups] == [0.1, 0.0]
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        parameter_groups(frozen.named_parameters(), 0.0)


def test_schedules_warm_up_linearly_then_decay_per_step():
    assert warmup_steps(10, 0.2) == 2 and warmup_steps(10, 0.15) == 2 and warmup_steps(10, 0.0) == 0
    cosine = lrs("cosine")
    assert cosine[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert cosine[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 1 / 8)))
    assert all(a >= b for a, b in itertools.pairwise(cosine[2:]))
    linear = lrs("linear")
    assert linear[2:] == pytest.approx([1 - k / 8 for k in range(8)])
    assert lrs("constant") == pytest.approx([0.0, 0.5] + [1.0] * 8)


def test_bad_options_name_the_config_key():
    with pytest.raises(ConfigError, match="trainer.lr_schedule"):
        lrs("exponential")
    with pytest.raises(ConfigError, match="trainer.warmup_ratio"):
        lrs("cosine", warmup_ratio=1.5)
    with pytest.raises(ConfigError, match="optimizer steps"):
        build_optimizer_and_scheduler(small_model().named_parameters(), 1.0, 0.0, 0.0, "cosine", float("inf"))
