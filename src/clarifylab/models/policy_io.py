"""Save and reload a trained policy as a self-describing directory.

Layout of a policy directory::

    clarifylab_policy.json     {"format": 1, "weights": "lora_adapter" | "lora_stack" | "full",
                                "spec": ModelSpec.to_dict(), "adapters": [stage names] (lora_stack only)}
    adapter_config.json + adapter_model.safetensors        (weights == "lora_adapter")
    stage0/, stage1/, ...: one adapter each, in training order   (weights == "lora_stack")
    config.json + model.safetensors + generation_config.json   (weights == "full")
    tokenizer files + chat_template.jinja

A ``lora_stack`` is a policy trained in LoRA stages on one base (SFT, then ACT / DPO / IRPO iterations; see
:mod:`clarifylab.models.adapter_stack`): the stages stay unmerged, so no stage's update is rounded away in bf16
and each stage's start (and reference) is exactly the previous stage's saved policy.

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
from clarifylab.io import temporary_directory
from clarifylab.models.spec import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

POLICY_FILENAME = "clarifylab_policy.json"
POLICY_FORMAT = 1
LORA_WEIGHTS = "lora_adapter"
STACK_WEIGHTS = "lora_stack"
FULL_WEIGHTS = "full"
WEIGHT_KINDS = (LORA_WEIGHTS, STACK_WEIGHTS, FULL_WEIGHTS)


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


def link_final_policy(output_dir: str | os.PathLike[str], last_policy: str | os.PathLike[str]) -> Path:
    """Make ``<output_dir>/policy`` (what ``evaluate.py policy_dir=`` and later stages read) point at the policy of
    a multi-stage run's last stage ``last_policy`` (IRPO's last iteration, STaR-GATE's last round): a relative
    symlink, or a copy where links are not supported; an older ``policy`` entry is replaced. Returns the link."""
    output_dir = Path(output_dir)
    target = output_dir / "policy"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    try:
        target.symlink_to(os.path.relpath(last_policy, output_dir), target_is_directory=True)
    except OSError:
        shutil.copytree(last_policy, target)
    return target


def save_policy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: ModelSpec,
    out_dir: str | os.PathLike[str],
) -> Path:
    """Write ``model`` (its LoRA adapter if it is a peft model, every stage if it is a stack of adapters, else
    all weights), ``tokenizer`` and ``spec`` (the base's) to ``out_dir``, atomically. Returns ``out_dir``."""
    from clarifylab.models.adapter_stack import adapter_names, is_adapter_stack

    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    weights = (STACK_WEIGHTS if is_adapter_stack(model) else LORA_WEIGHTS) if _is_peft_model(model) else FULL_WEIGHTS
    record: dict[str, object] = {"format": POLICY_FORMAT, "weights": weights, "spec": spec.to_dict()}
    if weights == STACK_WEIGHTS:
        names = adapter_names(model)
        record["adapters"] = names
        if "default" in names:
            raise ValueError("save_policy: a stacked policy's adapters must be named stage<k> (peft writes the "
                             "adapter 'default' into the directory's root); build stacks with adapter_stack")
    tmp = temporary_directory(target.parent, f".{target.name}.tmp-")  # mode follows the umask
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / POLICY_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
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
    if record.get("format") != POLICY_FORMAT or weights not in WEIGHT_KINDS:
        raise DataFormatError(
            f"{path}: unsupported format={record.get('format')!r} / weights={weights!r} "
            f"(this version reads format {POLICY_FORMAT} with weights in {list(WEIGHT_KINDS)})"
        )
    return weights, spec


def policy_stages(policy_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """The LoRA stages of a saved policy as ``[(adapter name, directory), ...]``: a ``lora_adapter`` policy is one
    stage (``stage0``, the directory itself), a ``lora_stack`` its recorded stages; a full policy has none."""
    from clarifylab.models.adapter_stack import stack_directories, stage_name

    weights, _ = read_policy_record(policy_dir)
    if weights == LORA_WEIGHTS:
        return [(stage_name(0), Path(policy_dir))]
    if weights == STACK_WEIGHTS:
        record = json.loads((Path(policy_dir) / POLICY_FILENAME).read_text())
        return stack_directories(policy_dir, record["adapters"])
    return []


def load_policy_stack(
    policy_dir: str | os.PathLike[str], cache_dir: str | os.PathLike[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelSpec]:
    """A LoRA policy (``lora_adapter`` or ``lora_stack``) as a frozen stack of ``stage<k>`` adapters on its
    base, unmerged, ready for :func:`~clarifylab.models.adapter_stack.push_adapter` (the next training stage)."""
    from transformers import AutoTokenizer

    from clarifylab.models.adapter_stack import load_adapter_stack
    from clarifylab.models.loading import ensure_pad_token, load_model_and_tokenizer

    stages = policy_stages(policy_dir)
    _, spec = read_policy_record(policy_dir)
    if not stages:
        raise DataFormatError(f"{policy_dir} holds full weights, not LoRA adapters: it cannot be stacked on")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir, trust_remote_code=spec.trust_remote_code)
    base, _ = load_model_and_tokenizer(spec, cache_dir)
    model = load_adapter_stack(base, stages)
    ensure_pad_token(model, tokenizer)
    model.eval()
    return model, tokenizer, spec


def load_policy(
    policy_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    merge: bool = False,
    trainable: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelSpec]:
    """Rebuild a saved policy: ``(model, tokenizer, spec)``, model in eval mode.

    For a LoRA policy the base is rebuilt from the recorded spec and the adapter loaded on top:
    by default as a ``PeftModel`` (un-merged: logits equal the saved model's exactly; its
    adapters can be disabled to get the base back). A ``lora_stack`` loads every stage, all active
    and unmerged. ``merge=True`` folds the adapter(s) into the base weights and returns a plain model
    (faster generation, but in bf16 a small delta is mostly rounded away: see ``adapter_stack``; never
    use it for a model that is trained on or compared with). ``trainable=True`` keeps the
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
    elif weights == STACK_WEIGHTS:
        from clarifylab.models.adapter_stack import load_adapter_stack

        if trainable:
            raise ValueError("load_policy(trainable=True) of a stacked policy: train a new stage on top instead "
                             "(load_policy_stack + adapter_stack.push_adapter)")
        base, _ = load_model_and_tokenizer(spec, cache_dir)
        model = load_adapter_stack(base, policy_stages(policy_dir))
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
