"""The tiny random Llama + word-level ChatML tokenizer used by every fast test."""

from __future__ import annotations

import time

import pytest

from clarifylab.models.tiny import IM_END, IM_START, PAD_TOKEN, build_tiny_model_and_tokenizer, build_tiny_tokenizer

CONVERSATION = [
    {"role": "system", "content": "You answer questions about the table."},
    {"role": "user", "content": "What was the revenue in 2021?"},
    {"role": "assistant", "content": "Which company do you mean?"},
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model_and_tokenizer(seed=0)


def test_same_seed_gives_identical_weights_and_vocab_and_other_seed_differs():
    import torch

    model_a, tok_a = build_tiny_model_and_tokenizer(seed=3)
    model_b, tok_b = build_tiny_model_and_tokenizer(seed=3)
    model_c, _ = build_tiny_model_and_tokenizer(seed=4)
    assert tok_a.get_vocab() == tok_b.get_vocab()
    state_a, state_b, state_c = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["model.layers.0.self_attn.q_proj.weight"],
                           state_c["model.layers.0.self_attn.q_proj.weight"])


def test_building_does_not_touch_the_callers_random_state():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model_and_tokenizer(seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_architecture_matches_the_documented_tiny_config(tiny):
    model, tokenizer = tiny
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (
        64, 2, 4, 128)
    assert config.vocab_size == len(tokenizer)
    assert model.get_input_embeddings().weight.shape == (len(tokenizer), 64)


def test_builds_in_well_under_a_second():
    build_tiny_model_and_tokenizer(seed=1)  # warm imports
    start = time.perf_counter()
    build_tiny_model_and_tokenizer(seed=2)
    assert time.perf_counter() - start < 0.5


def test_special_token_ids_eos_and_pad_are_distinct(tiny):
    _, tokenizer = tiny
    assert tokenizer.convert_tokens_to_ids(["[UNK]", PAD_TOKEN, IM_START, IM_END]) == [0, 1, 2, 3]
    assert tokenizer.eos_token == IM_END and tokenizer.eos_token_id == 3
    assert tokenizer.pad_token == PAD_TOKEN and tokenizer.pad_token_id == 1
    assert tokenizer.bos_token is None


def test_chat_template_renders_chatml_exactly(tiny):
    _, tokenizer = tiny
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou answer questions about the table.<|im_end|>\n"
        "<|im_start|>user\nWhat was the revenue in 2021?<|im_end|>\n"
        "<|im_start|>assistant\nWhich company do you mean?<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.startswith("<|im_start|>system\n")  # no injected default system prompt


def test_special_tokens_are_atomic_and_words_split_on_punctuation_and_digits(tiny):
    _, tokenizer = tiny
    text = tokenizer.apply_chat_template(CONVERSATION[1:2], tokenize=False)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert tokens == ["<|im_start|>", "user", "what", "was", "the", "revenue", "in", "2", "0", "2", "1", "?",
                      "<|im_end|>"]
    glued = tokenizer("x<|im_end|><|im_start|>Acme")["input_ids"]
    assert glued == [tokenizer.convert_tokens_to_ids("x"), 3, 2, 0]  # "acme" is not in the corpus -> [UNK]


def test_offset_mappings_point_back_into_the_text(tiny):
    _, tokenizer = tiny
    text = "<|im_start|>user\nRevenue, 2021?"
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = [text[start:end] for start, end in encoding["offset_mapping"]]
    assert pieces == ["<|im_start|>", "user", "Revenue", ",", "2", "0", "2", "1", "?"]


def test_assistant_mask_covers_assistant_content_and_its_end_token(tiny):
    _, tokenizer = tiny
    out = tokenizer.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(tokenizer.convert_ids_to_tokens(out["input_ids"]), out["assistant_masks"]) if m]
    assert masked == ["which", "company", "do", "you", "mean", "?", "<|im_end|>"]


def test_save_and_reload_with_auto_classes(tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer2 = AutoTokenizer.from_pretrained(tmp_path)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert tokenizer2.apply_chat_template(CONVERSATION, tokenize=False) == text
    assert tokenizer2(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (tokenizer2.eos_token, tokenizer2.pad_token) == (IM_END, PAD_TOKEN)
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model2(**batch).logits)


def test_generation_stops_at_eos_and_respects_the_token_budget(tiny):
    import torch

    model, tokenizer = tiny
    batch = tokenizer.apply_chat_template(CONVERSATION[:2], add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 1 and batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 4


def test_tokenizer_alone_matches_the_one_built_with_the_model(tiny):
    assert build_tiny_tokenizer().get_vocab() == tiny[1].get_vocab()
