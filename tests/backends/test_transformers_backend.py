"""TransformersBackend on the tiny random Llama: batching, stopping, usage, mode restoration."""

from __future__ import annotations

import pytest
import torch

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.decode_pool import completion_lengths
from clarifylab.backends.transformers_backend import TransformersBackend, end_of_turn_ids
from clarifylab.errors import ConfigError
from clarifylab.models.tiny import build_tiny_model_and_tokenizer

CONVERSATIONS = [
    [{"role": "system", "content": "answer the question"}, {"role": "user", "content": "what is the revenue " * k}]
    for k in range(1, 6)
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model_and_tokenizer(seed=0)


def constant_output_model(token: str):
    """A tiny model whose every next-token argmax is ``token`` (zero head weights, one-hot bias)."""
    model, tokenizer = build_tiny_model_and_tokenizer(seed=1)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[tokenizer.convert_tokens_to_ids(token)] = 10.0
    model.lm_head = head
    return model, tokenizer


def test_implements_protocol_and_one_reply_per_conversation(tiny):
    backend = TransformersBackend(*tiny, batch_size=2)
    replies = backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=6))
    assert isinstance(backend, ChatBackend)
    assert len(replies) == len(CONVERSATIONS) and all(isinstance(r, str) for r in replies)
    assert backend.complete([], SamplingParams()) == []


def test_greedy_is_independent_of_batch_size(tiny):
    params = SamplingParams(max_new_tokens=8)
    one = TransformersBackend(*tiny, batch_size=1).complete(CONVERSATIONS, params)
    four = TransformersBackend(*tiny, batch_size=4).complete(CONVERSATIONS, params)
    assert one == four


def test_returns_only_new_text_and_counts_tokens():
    model, tokenizer = constant_output_model("yes")
    backend = TransformersBackend(model, tokenizer, batch_size=3, share_prefixes=False)
    replies = backend.complete(CONVERSATIONS, SamplingParams(max_new_tokens=3))
    assert replies == ["yes yes yes"] * len(CONVERSATIONS)  # no prompt text, no special tokens
    prompt_lengths = [len(tokenizer(backend.render(c), add_special_tokens=False)["input_ids"]) for c in CONVERSATIONS]
    assert backend.usage == {"prompt_tokens": sum(prompt_lengths), "prefill_tokens": sum(prompt_lengths),
                             "completion_tokens": 3 * len(CONVERSATIONS), "conversations": len(CONVERSATIONS),
                             "calls": 1}


def test_stops_at_end_of_turn_token():
    model, tokenizer = constant_output_model("<|im_end|>")
    backend = TransformersBackend(model, tokenizer)
    assert backend.complete(CONVERSATIONS[:2], SamplingParams(max_new_tokens=5)) == ["", ""]
    assert backend.usage["completion_tokens"] == 2  # the stop token itself, once per conversation


def test_completion_lengths_cut_at_first_stop_id():
    new_tokens = torch.tensor([[5, 6, 3, 1], [5, 6, 7, 8], [3, 1, 1, 1]])
    assert completion_lengths(new_tokens, [1, 3]) == ([2, 4, 0], [3, 4, 1])


def test_end_of_turn_ids_include_im_end_and_eos(tiny):
    _, tokenizer = tiny
    ids = end_of_turn_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in ids and tokenizer.eos_token_id in ids


def test_restores_train_mode_and_padding_side(tiny):
    model, tokenizer = tiny
    model.train()
    try:
        TransformersBackend(model, tokenizer).complete(CONVERSATIONS[:2], SamplingParams(max_new_tokens=2))
        assert model.training and tokenizer.padding_side == "right"
    finally:
        model.eval()


def test_seeded_sampling_is_reproducible_and_keeps_global_rng(tiny):
    backend = TransformersBackend(*tiny, batch_size=2)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=7)
    state = torch.get_rng_state()
    first = backend.complete(CONVERSATIONS, params)
    assert torch.equal(state, torch.get_rng_state())
    assert backend.complete(CONVERSATIONS, params) == first


def test_works_with_peft_lora_model():
    from peft import LoraConfig, get_peft_model

    base, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    params = SamplingParams(max_new_tokens=5)
    expected = TransformersBackend(base, tokenizer).complete(CONVERSATIONS[:3], params)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    peft_model.train()
    replies = TransformersBackend(peft_model, tokenizer).complete(CONVERSATIONS[:3], params)
    assert replies == expected  # LoRA B starts at zero: same function as the base model
    assert peft_model.training


def test_rejects_tokenizer_without_chat_template(tiny):
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="chat template"):
        TransformersBackend(model, tokenizer)


@pytest.mark.parametrize("kwargs", [{"max_new_tokens": 0}, {"temperature": -0.1}, {"top_p": 0.0}])
def test_sampling_params_validate(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)
