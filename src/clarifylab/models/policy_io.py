"""Save and reload a trained policy as a self-describing directory.

Layout of a policy directory::

    clarifylab_policy.json     {"format": 1, "weights": "lora_adapter" | "full", "spec": ModelSpec.to_dict()}
    adapter_config.json + adapter_model.safetensors        (weights == "lora_adapter")
    config.json + model.safetensors + generation_config.json   (weights == "full")
    tokenizer files + chat_template.jinja

A LoRA policy stores only its adapter: the base model is rebuilt from the recorded spec (for the
``tiny`` source the base is deterministic from its seed; for ``smollm2_gguf`` it comes from the
converted cache; for ``hub``/``local`` from the same id/directory). The directory is written into a
temporary sibling and renamed into place, so a killed job never leaves a half-written policy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from clarifylab.errors import DataFormatError, DataNotFoundError
from clarifylab.models.spec import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

POLICY_FILENAME = "clarifylab_policy.json"
POLICY_FORMAT = 1
LORA_WEIGHTS = "lora_adapter"
FULL_WEIGHTS = "full"


def _is_peft_model(model: object) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _replace_directory(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` directory to ``target``, replacing an older ``target`` if any.

    ``os.replace`` cannot overwrite a non-empty directory, so an old ``target`` is first renamed
    aside and deleted after the new one is in place.
    """
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_policy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: ModelSpec,
    out_dir: str | os.PathLike[str],
) -> Path:
    """Write ``model`` (its LoRA adapter if it is a peft model, else all weights), ``tokenizer`` and
    ``spec`` to ``out_dir``, atomically. Returns ``out_dir`` as a ``Path``."""
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    weights = LORA_WEIGHTS if _is_peft_model(model) else FULL_WEIGHTS
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {"format": POLICY_FORMAT, "weights": weights, "spec": spec.to_dict()}
        (tmp / POLICY_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a saved policy should be readable like any output
        _replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_policy_record(policy_dir: str | os.PathLike[str]) -> tuple[str, ModelSpec]:
    """``(weights kind, ModelSpec)`` from ``<policy_dir>/clarifylab_policy.json``."""
    path = Path(policy_dir) / POLICY_FILENAME
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found: {policy_dir} is not a policy saved by clarifylab.models.save_policy "
            f"(for a plain save_pretrained directory use student.source=local)"
        )
    try:
        record = json.loads(path.read_text())
        weights = record["weights"]
        spec = ModelSpec.from_dict(record["spec"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataFormatError(f"{path} is malformed ({error!r}); re-save the policy") from error
    if record.get("format") != POLICY_FORMAT or weights not in (LORA_WEIGHTS, FULL_WEIGHTS):
        raise DataFormatError(
            f"{path}: unsupported format={record.get('format')!r} / weights={weights!r} "
            f"(this version reads format {POLICY_FORMAT} with weights {LORA_WEIGHTS!r} or {FULL_WEIGHTS!r})"
        )
    return weights, spec


def load_policy(
    policy_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    merge: bool = False,
    trainable: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelSpec]:
    """Rebuild a saved policy: ``(model, tokenizer, spec)``, model in eval mode.

    For a LoRA policy the base is rebuilt from the recorded spec and the adapter loaded on top:
    by default as a ``PeftModel`` (un-merged: logits equal the saved model's exactly; its
    adapters can be disabled to get the base back). ``merge=True`` folds the adapter into the
    base weights and returns a plain model (faster generation; the base is no longer available,
    e.g. to start a new LoRA stage whose reference is this policy). ``trainable=True`` keeps the
    adapter trainable to continue training it. A full fine-tuned policy loads directly from the
    directory. ``cache_dir`` is where converted base models live (see ``load_model_and_tokenizer``).
    """
    from transformers import AutoTokenizer

    from clarifylab.models.loading import ensure_pad_token, load_model_and_tokenizer, torch_dtype

    policy_dir = Path(policy_dir)
    weights, spec = read_policy_record(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir, trust_remote_code=spec.trust_remote_code)
    if weights == LORA_WEIGHTS:
        from peft import PeftModel

        base, _ = load_model_and_tokenizer(spec, cache_dir)
        model = PeftModel.from_pretrained(base, str(policy_dir), is_trainable=trainable and not merge)
        if merge:
            model = model.merge_and_unload()
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            policy_dir, dtype=torch_dtype(spec.dtype), trust_remote_code=spec.trust_remote_code
        )
        model.requires_grad_(trainable)
    ensure_pad_token(model, tokenizer)
    model.eval()
    return model, tokenizer, spec
