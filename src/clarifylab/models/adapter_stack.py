"""Stacked LoRA adapters: a policy trained in stages (SFT -> ACT; IRPO iteration after iteration) kept unmerged.

Why not merge: at paper scale the base is bf16 and a preference stage (lr 5e-7) moves a LoRA delta of about
1e-3 relative to W. bf16 keeps 8 mantissa bits (relative spacing 2^-8 ~ 3.9e-3), so ``W + delta`` rounded back
to bf16 loses most of the delta, whether the sum is formed in bf16 or in fp32 and then cast. Merging the SFT
adapter into ACT's initial weights therefore changed the model ACT started from (and its reference), and merging
the ACT adapter into a saved policy changed what was evaluated.

Instead every stage keeps its own adapter on the same frozen base. A LoRA layer's output is

    h = W x + sum_{k in active stages} (alpha_k / r_k) B_k A_k x

computed at run time, so the stages' deltas are never rounded into W. A new stage's adapter starts with
``B = 0``: its term is exactly 0, so the stacked model's logits equal the previous stage's exactly, and the
reference of the new stage (the stack without its top adapter, :func:`only_adapters`) is exactly the
previous stage. Adapters are named ``stage0``, ``stage1``, ... in training order; only the top one trains.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clarifylab.models.spec import LoraSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

STAGE_PREFIX = "stage"


def stage_name(index: int) -> str:
    """``stage<index>``: the adapter name of training stage ``index`` (0 = the first LoRA stage, e.g. SFT)."""
    return f"{STAGE_PREFIX}{index}"


def adapter_names(model: Any) -> list[str]:
    """The peft model's adapter names in the order they were added ([] for a plain model)."""
    return list(getattr(model, "peft_config", {}) or {})


def is_adapter_stack(model: Any) -> bool:
    """True for a peft model holding more than one adapter (a stacked policy)."""
    return len(adapter_names(model)) > 1


def _activate_all(model: Any, trainable: str | None) -> Any:
    """Make every adapter active; only ``trainable`` (or none) keeps ``requires_grad`` and its LoRA dropout (a
    frozen stage is deterministic, as its merged weights were: the policy at step 0 equals the reference)."""
    import torch
    from peft.tuners.lora import LoraLayer

    names = adapter_names(model)
    model.base_model.set_adapter(names)  # marks the active adapters trainable ...
    for name, parameter in model.named_parameters():  # ... so freeze all but the top one
        parameter.requires_grad_(trainable is not None and f".{trainable}." in name)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in names:
                if name != trainable and name in module.lora_dropout:
                    module.lora_dropout[name] = torch.nn.Identity()
    return model


def load_adapter_stack(base: PreTrainedModel, adapters: Sequence[tuple[str, str | os.PathLike[str]]]) -> Any:
    """``base`` with the saved adapters ``[(name, directory), ...]`` loaded in order, all active, all frozen."""
    from peft import PeftModel

    (first_name, first_dir), *rest = adapters
    model = PeftModel.from_pretrained(base, str(first_dir), adapter_name=first_name)
    for name, directory in rest:
        model.load_adapter(str(directory), adapter_name=name)
    return _activate_all(model, trainable=None)


def push_adapter(model: Any, lora: LoraSpec) -> Any:
    """Add a new trainable LoRA stage (``B = 0``: the model's outputs are unchanged) on top of a frozen stack."""
    from clarifylab.models.loading import lora_config

    name = stage_name(len(adapter_names(model)))
    model.add_adapter(name, lora_config(lora))
    return _activate_all(model, trainable=name)


@contextmanager
def only_adapters(model: Any, names: Sequence[str]) -> Iterator[Any]:
    """Within the block only the adapters ``names`` contribute (e.g. the stack minus its trainable top = the
    reference); ``requires_grad`` is untouched (peft's ``set_adapter`` would change it)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    saved = [layer._active_adapter for layer in layers]
    try:
        for layer in layers:
            layer._active_adapter = list(names)
        yield model
    finally:
        for layer, active in zip(layers, saved):
            layer._active_adapter = active


def stack_directories(policy_dir: str | os.PathLike[str], names: Sequence[str]) -> list[tuple[str, Path]]:
    """``[(name, <policy_dir>/<name>), ...]``: where :func:`~clarifylab.models.policy_io.save_policy` puts each
    stage of a stacked policy."""
    return [(name, Path(policy_dir) / name) for name in names]
