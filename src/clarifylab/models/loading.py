"""Load a causal LM and its tokenizer from a :class:`ModelSpec`, and prepare it for fine-tuning.

Sources: ``hub`` (a Hub id via ``from_pretrained``), ``local`` (a ``save_pretrained`` directory),
``smollm2_gguf`` (the bundled SmolLM2, converted once into ``<cache_dir>/models``) and ``tiny``
(a seeded random Llama built in-process).

The tokenizer is returned as loaded (padding side included: left padding for generation is the
caller's choice). If it has no pad token, its eos token is used. Padding must therefore always be
masked by the attention mask, never by comparing ids with ``pad_token_id`` (for SmolLM2 pad == eos).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.models.spec import LoraSpec, ModelSpec

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (names validated by ``ModelSpec``)."""
    import torch

    return getattr(torch, name)


def _from_pretrained(path: str, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``AutoModelForCausalLM`` + ``AutoTokenizer`` from a Hub id or a directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra: dict[str, Any] = {}
    if spec.attn_implementation:
        extra["attn_implementation"] = spec.attn_implementation
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype(spec.dtype), trust_remote_code=spec.trust_remote_code, **extra
    )
    return model, tokenizer


def _load_local(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    directory = Path(os.path.expanduser(spec.name_or_path or ""))
    if not directory.is_dir():
        raise DataNotFoundError(
            f"{spec.role}.name_or_path={spec.name_or_path!r} is not a directory: point it at a model saved "
            f"with save_pretrained (config.json, weights and tokenizer files)"
        )
    if not (directory / "config.json").is_file():
        hint = (" It holds a LoRA adapter: load it with clarifylab.models.load_policy instead."
                if (directory / "adapter_config.json").is_file() else "")
        raise DataNotFoundError(
            f"{spec.role}.name_or_path={str(directory)!r} has no config.json, so it is not a "
            f"save_pretrained model directory.{hint}"
        )
    return _from_pretrained(str(directory), spec)


def _load_hub(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    name = spec.name_or_path or ""
    try:
        return _from_pretrained(name, spec)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        raise DataNotFoundError(
            f"could not load {spec.role}.name_or_path={name!r} from the Hugging Face Hub"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {error}\n"
            f"If the Hub is unreachable, download the model elsewhere and set {spec.role}.source=local "
            f"{spec.role}.name_or_path=<the downloaded directory>; on this machine "
            f"{spec.role}=smollm2 (bundled) or {spec.role}=tiny work offline."
        ) from error


def ensure_pad_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token (its eos) if it has none, and tell the model its id.

    The pad token may equal eos afterwards: callers mask padding with the attention mask.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataNotFoundError(
                "the tokenizer has neither a pad nor an eos token; set one in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
        log.info("tokenizer has no pad token: using eos %r (padding is masked by attention mask)", tokenizer.eos_token)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def load_model_and_tokenizer(
    spec: ModelSpec, cache_dir: str | os.PathLike[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (in ``spec.dtype``, eval mode, no adapters) and its tokenizer.

    ``cache_dir`` holds converted models (``<cache_dir>/models/...``); only ``smollm2_gguf`` uses it.
    Apply :func:`prepare_for_training` afterwards to add LoRA / gradient checkpointing.
    """
    if spec.source == "tiny":
        from clarifylab.models.tiny import build_tiny_model_and_tokenizer

        model, tokenizer = build_tiny_model_and_tokenizer(seed=spec.seed)
        model.to(torch_dtype(spec.dtype))
    elif spec.source == "smollm2_gguf":
        from clarifylab.models.smollm2 import ensure_smollm2_converted

        model, tokenizer = _from_pretrained(str(ensure_smollm2_converted(cache_dir)), spec)
    elif spec.source == "local":
        model, tokenizer = _load_local(spec)
    else:
        model, tokenizer = _load_hub(spec)
    ensure_pad_token(model, tokenizer)
    model.eval()
    return model, tokenizer


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in the backward pass (non-reentrant, so frozen inputs need no grad hook)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False  # the KV cache is useless (and warned about) while checkpointing


def lora_config(lora: LoraSpec) -> Any:
    """The peft ``LoraConfig`` (causal LM) of ``lora``."""
    from peft import LoraConfig, TaskType

    targets: str | list[str] = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=targets, bias=lora.bias)


def apply_lora(model: PreTrainedModel, lora: LoraSpec | None) -> PreTrainedModel:
    """Wrap ``model`` with trainable LoRA adapters, or make every weight trainable.

    With ``lora`` enabled, the base weights are frozen and only the adapter matrices train
    (``A: [r, in_features]``, ``B: [out_features, r]`` per target module; update ``(alpha/r) B A``).
    With ``lora`` ``None`` or disabled: full fine-tuning, the model is returned unchanged with
    ``requires_grad=True`` on every parameter.
    """
    if lora is None or not lora.enabled:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import get_peft_model

    config = lora_config(lora)
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # peft: "Target modules {...} not found in the base model"
        raise ConfigError(
            f"LoRA could not be applied: {error}. Set lora.target_modules to module names of this model "
            f"(e.g. [q_proj, v_proj] for Llama/Mistral) or [all-linear]."
        ) from error


def prepare_for_training(model: PreTrainedModel, spec: ModelSpec) -> PreTrainedModel:
    """Gradient checkpointing (if ``spec.gradient_checkpointing``), then LoRA or full fine-tuning."""
    if spec.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return apply_lora(model, spec.lora if spec.uses_lora else None)


def count_parameters(model: PreTrainedModel) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
