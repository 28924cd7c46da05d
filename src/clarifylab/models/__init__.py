"""Model sources (Hub id, local directory, bundled SmolLM2 GGUF, tiny random Llama), LoRA setup,
and saving/loading trained policies. Importing this package imports no torch/transformers."""

from __future__ import annotations

from clarifylab.models.loading import (
    apply_lora,
    count_parameters,
    enable_gradient_checkpointing,
    ensure_pad_token,
    load_model_and_tokenizer,
    prepare_for_training,
)
from clarifylab.models.policy_io import load_policy, load_policy_stack, read_policy_record, save_policy
from clarifylab.models.smollm2 import ensure_smollm2_converted, find_bundled_gguf
from clarifylab.models.spec import LoraSpec, ModelSpec
from clarifylab.models.tiny import build_tiny_model_and_tokenizer, build_tiny_tokenizer

__all__ = [
    "LoraSpec",
    "ModelSpec",
    "apply_lora",
    "build_tiny_model_and_tokenizer",
    "build_tiny_tokenizer",
    "count_parameters",
    "enable_gradient_checkpointing",
    "ensure_pad_token",
    "ensure_smollm2_converted",
    "find_bundled_gguf",
    "load_model_and_tokenizer",
    "load_policy",
    "load_policy_stack",
    "prepare_for_training",
    "read_policy_record",
    "save_policy",
]
