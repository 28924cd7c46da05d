"""Continuous batching and shared-prefix prefill in TransformersBackend (issue 14, item 3): greedy replies equal one
plain ``generate`` per prompt whatever the pool size and sharing; each ``generate`` call continues at most
``batch_size`` left-padded rows from a cache over all but their last token; rows that stopped leave and waiting
prompts enter; shared prefixes run through the model once; a model whose cache cannot be pooled falls back (logged)
to one padded ``generate`` per chunk."""

from __future__ import annotations

import logging

import pytest
import torch

from clarifylab.backends.base import SamplingParams
from clarifylab.backends.decode_pool import Running, completion_lengths, left_pad, merge, poolable_cache
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.models.tiny import build_tiny_model_and_tokenizer

TABLE = "| year | revenue | cost |\n| 2019 | 10 | 4 |\n| 2020 | 12 | 5 |"
QUESTIONS = ["what is the revenue in 2019?", "and the cost?", "what changed?", "by how much?"]
MAX_NEW = 12
# Ids the tiny seed-0 model emits greedily at different steps of different conversations: as extra stop ids they
# end the replies after 9, 12, 9, 4 and 3 tokens, so rows leave the pool at different segments.
EXTRA_STOPS = (68, 208, 48)


def dialogue(k: int) -> list[dict[str, str]]:
    """Turn ``k`` of one table dialogue: the same system prompt and table, ``k`` earlier exchanges."""
    history = []
    for j in range(k):
        history += [{"role": "user", "content": f"question {j}"}, {"role": "assistant", "content": f"answer {j}"}]
    return [{"role": "system", "content": "answer from the table\n" + TABLE}, *history,
            {"role": "user", "content": QUESTIONS[k]}]


CONVERSATIONS = [dialogue(k) for k in range(4)] + [
    [{"role": "system", "content": "something else"}, {"role": "user", "content": "hello there"}]]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model_and_tokenizer(seed=0)


def backend_for(model, tokenizer, **kwargs) -> TransformersBackend:
    backend = TransformersBackend(model, tokenizer, **kwargs)
    backend.stop_ids = sorted({*backend.stop_ids, *EXTRA_STOPS})
    return backend


def one_generate_per_prompt(model, tokenizer, conversations) -> list[str]:
    """The reference: a plain, unpadded greedy ``generate`` per prompt with the same stop ids."""
    backend = backend_for(model, tokenizer)
    replies = []
    for conversation in conversations:
        ids = tokenizer(backend.render(conversation), add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False,
                                 eos_token_id=backend.stop_ids, pad_token_id=backend.pad_id)
        new = out[:, len(ids):]
        text_length, _ = completion_lengths(new, backend.stop_ids)
        replies.append(tokenizer.decode(new[0, :text_length[0]].tolist(), skip_special_tokens=True).strip())
    return replies


class RecordingGenerate:
    """Wraps ``model.generate``: records each call's rows, width, cache length and new tokens."""

    def __init__(self, model) -> None:
        self.inner, self.calls = model.generate, []

    def __call__(self, **kwargs):
        cache = kwargs.get("past_key_values")
        call = {"rows": kwargs["input_ids"].shape[0], "width": kwargs["input_ids"].shape[1],
                "mask": kwargs["attention_mask"].clone(), "cached": None if cache is None else cache.get_seq_length()}
        out = self.inner(**kwargs)  # (generate grows the cache it was given)
        call["new"] = (out.sequences if hasattr(out, "sequences") else out).shape[1] - call["width"]
        self.calls.append(call)
        return out


def test_the_extra_stops_end_replies_at_different_steps(tiny):
    replies = one_generate_per_prompt(*tiny, CONVERSATIONS)
    lengths = {len(r.split()) for r in replies}
    assert len(lengths) >= 3  # the pool sees rows leave at different times


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
@pytest.mark.parametrize("share", [True, False])
def test_greedy_replies_equal_one_generate_per_prompt(tiny, batch_size, share):
    expected = one_generate_per_prompt(*tiny, CONVERSATIONS)
    backend = backend_for(*tiny, batch_size=batch_size, share_prefixes=share)
    assert backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=MAX_NEW)) == expected


def test_pool_refills_and_continues_each_row_from_its_cache(tiny):
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    recorder = RecordingGenerate(model)
    model.generate = recorder
    backend = backend_for(model, tokenizer, batch_size=2)
    backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=MAX_NEW))
    rows = [call["rows"] for call in recorder.calls]
    assert max(rows) == 2 and len(recorder.calls) > 3  # segments, never more than batch_size rows
    for call in recorder.calls:
        mask = call["mask"]
        assert bool((mask.diff(dim=1) >= 0).all()) and bool(mask[:, -1].all())  # left padding only
        assert call["cached"] == call["width"] - 1  # generate runs only each row's last token
    # every row generated up to its stop (or the budget), and no call ran longer than the pool segment
    assert sum(call["rows"] * call["new"] for call in recorder.calls) < len(CONVERSATIONS) * MAX_NEW


def test_shared_prefixes_run_once(tiny):
    shared = backend_for(*tiny, batch_size=4)
    plain = backend_for(*tiny, batch_size=4, share_prefixes=False)
    params = SamplingParams(max_new_tokens=4)
    assert shared.complete(CONVERSATIONS[:4], params) == plain.complete(CONVERSATIONS[:4], params)
    assert shared.usage["prompt_tokens"] == plain.usage["prompt_tokens"] == plain.usage["prefill_tokens"]
    lengths = [len(tiny[1](shared.render(c), add_special_tokens=False)["input_ids"]) for c in CONVERSATIONS[:4]]
    assert shared.usage["prefill_tokens"] < sum(lengths) * 0.6  # the system prompt and table run once


def test_seeded_sampling_reproducible_in_the_pool(tiny):
    backend = backend_for(*tiny, batch_size=2)
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3)
    assert backend.complete(CONVERSATIONS, params) == backend.complete(CONVERSATIONS, params)


def test_merge_right_aligns_rows_of_two_pools():
    from transformers import DynamicCache

    a = Running([0], torch.tensor([[5, 6, 7]]), torch.tensor([[1, 1, 1]]),
                DynamicCache(ddp_cache_data=[(torch.ones(1, 1, 2, 1), torch.ones(1, 1, 2, 1))]))
    b = Running([1], torch.tensor([[0, 8, 9, 3, 4]]), torch.tensor([[0, 1, 1, 1, 1]]),
                DynamicCache(ddp_cache_data=[(torch.full((1, 1, 4, 1), 2.0), torch.full((1, 1, 4, 1), 3.0))]))
    merged = merge(a, b, pad_id=0)
    assert merged.rows == [0, 1]
    assert merged.ids.tolist() == [[0, 0, 5, 6, 7], [0, 8, 9, 3, 4]]
    assert merged.mask.tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert merged.cache.layers[0].keys[:, 0, :, 0].tolist() == [[0, 0, 1, 1], [2, 2, 2, 2]]
    assert merged.cache.layers[0].values[:, 0, :, 0].tolist() == [[0, 0, 1, 1], [3, 3, 3, 3]]
    assert left_pad(torch.tensor([[1]]), 3, 1, 9).tolist() == [[9, 9, 1]]


def test_model_whose_cache_cannot_be_pooled_falls_back_to_one_generate_per_chunk(caplog):
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    expected = one_generate_per_prompt(model, tokenizer, CONVERSATIONS)
    model.config.sliding_window = 4096  # sliding-window cache layers (longer than any prompt: same function)
    assert not poolable_cache(model)
    recorder = RecordingGenerate(model)
    model.generate = recorder
    with caplog.at_level(logging.INFO, logger="clarifylab.backends.transformers_backend"):
        backend = backend_for(model, tokenizer, batch_size=2)
    assert not backend.pooled and not backend.share_prefixes
    assert sum("continuous batching and shared-prefix prefill off" in r.message for r in caplog.records) == 1
    assert backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=MAX_NEW)) == expected
    assert [call["rows"] for call in recorder.calls] == [2, 2, 1]
    assert all(call["cached"] is None for call in recorder.calls)
    assert backend.usage["prefill_tokens"] == backend.usage["prompt_tokens"]


@pytest.mark.slow
def test_smollm2_pooled_shared_replies_equal_one_generate_per_prompt():
    from pathlib import Path

    from clarifylab.backends.shared_prefill import prefix_walk
    from clarifylab.models import LoraSpec, ModelSpec
    from clarifylab.models.loading import load_model_and_tokenizer

    spec = ModelSpec(source="smollm2_gguf", dtype="float32", lora=LoraSpec(enabled=False))
    model, tokenizer = load_model_and_tokenizer(spec, Path(__file__).resolve().parents[2] / ".cache")
    conversations = CONVERSATIONS + [dialogue(k)[:1] + [{"role": "user", "content": f"total cost in {2019 + k}?"}]
                                     for k in range(2)]
    params = SamplingParams(max_new_tokens=24)
    one = TransformersBackend(model, tokenizer, batch_size=1).complete(conversations, params)
    pooled = TransformersBackend(model, tokenizer, batch_size=3)
    assert pooled.complete(conversations, params) == one
    assert pooled.usage["prefill_tokens"] < pooled.usage["prompt_tokens"]
    rows = [tokenizer(pooled.render(c), add_special_tokens=False)["input_ids"] for c in conversations[:3]]
    with torch.inference_mode():
        per_row, _ = prefix_walk(model, rows)
        for row, layers in zip(rows, per_row):
            plain = model(input_ids=torch.tensor([row[:-1]]), use_cache=True).past_key_values
            for (keys, values), layer in zip(layers, plain.layers):
                torch.testing.assert_close(keys, layer.keys, atol=1e-4, rtol=0)
                torch.testing.assert_close(values, layer.values, atol=1e-4, rtol=0)
