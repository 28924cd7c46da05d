"""TransformersBackend batching (issue 14, item 3): one left-padded ``generate`` with the KV cache per chunk of
``batch_size`` conversations, and rows that stopped at their end-of-turn token stop counting generated tokens."""

from __future__ import annotations

import torch

from clarifylab.backends.base import SamplingParams
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.models.tiny import build_tiny_model_and_tokenizer

CONVERSATIONS = [[{"role": "system", "content": "answer"}, {"role": "user", "content": "how much " * k}]
                 for k in (1, 7, 3, 5, 2)]


class RecordingGenerate:
    """Wraps ``model.generate``: records the inputs and generation config of every call."""

    def __init__(self, model, replace_new_tokens=None) -> None:
        self.inner, self.calls, self.replace_new_tokens = model.generate, [], replace_new_tokens

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.replace_new_tokens is None:
            return self.inner(**kwargs)
        new = self.replace_new_tokens[:kwargs["input_ids"].shape[0]]
        return torch.cat([kwargs["input_ids"], new], dim=1)


def test_one_left_padded_cached_generate_per_chunk():
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    recorder = RecordingGenerate(model)
    model.generate = recorder
    backend = TransformersBackend(model, tokenizer, batch_size=2)
    replies = backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=4))
    assert len(replies) == 5 and backend.usage["calls"] == 1
    assert [call["input_ids"].shape[0] for call in recorder.calls] == [2, 2, 1]  # 5 conversations, chunks of 2
    for call in recorder.calls:
        mask = call["attention_mask"]
        assert bool((mask.diff(dim=1) >= 0).all())  # padding only on the left
        assert bool(mask[:, -1].all())  # every row's last prompt token is real: generation continues from it
        config = call["generation_config"]
        assert config.use_cache and sorted(config.eos_token_id) == backend.stop_ids
    # longest prompts first: the first chunk holds the two longest conversations (k = 7 and 5)
    assert recorder.calls[0]["attention_mask"].sum(dim=1).tolist() == sorted(
        recorder.calls[0]["attention_mask"].sum(dim=1).tolist(), reverse=True)
    assert recorder.calls[0]["attention_mask"].sum().item() > recorder.calls[1]["attention_mask"].sum().item()


def test_rows_that_stopped_stop_counting_and_their_text_ends_at_the_stop_token():
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = 0 if stop != 0 else 1
    a, b = tokenizer("yes no", add_special_tokens=False)["input_ids"][:2]
    assert stop not in (a, b, pad)
    # row 0 stops after one token (then padded); row 1 never stops within max_new_tokens
    new_tokens = torch.tensor([[a, stop, pad, pad], [a, b, a, b]])
    model.generate = RecordingGenerate(model, replace_new_tokens=new_tokens)
    backend = TransformersBackend(model, tokenizer, batch_size=2)
    backend.pad_id = pad
    replies = backend.complete(CONVERSATIONS[:1] * 2, SamplingParams(max_new_tokens=4))
    assert replies == [tokenizer.decode([a]).strip(), tokenizer.decode([a, b, a, b]).strip()] and replies[0]
    assert backend.usage["completion_tokens"] == 2 + 4  # text + the stop token; padding after it is not counted
