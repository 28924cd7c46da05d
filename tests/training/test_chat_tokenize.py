"""Assistant-only loss masking: exact labelled positions on the tiny ChatML tokenizer."""

from __future__ import annotations

import pytest

from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.models.tiny import IM_END, build_tiny_tokenizer
from clarifylab.training.chat_tokenize import (
    IGNORE_INDEX,
    ConversationTooLongError,
    assistant_spans,
    label_mask,
    tokenize_conversation,
    tokenize_conversations,
)
from clarifylab.training.collate import RightPadCollator

CONVERSATION = [
    {"role": "system", "content": "Answer the question about the table."},
    {"role": "user", "content": "What is the revenue?"},
    {"role": "assistant", "content": "Which year do you mean?"},
    {"role": "user", "content": "2021"},
    {"role": "assistant", "content": "The revenue is 5.2"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def labelled_runs(feature: dict[str, list[int]]) -> list[list[int]]:
    """Maximal runs of consecutive labelled positions."""
    runs: list[list[int]] = []
    previous = None
    for position, label in enumerate(feature["labels"]):
        if label == IGNORE_INDEX:
            continue
        if previous is None or position != previous + 1:
            runs.append([])
        runs[-1].append(position)
        previous = position
    return runs


def test_every_assistant_turn_is_labelled_with_its_end_of_turn_and_nothing_else(tokenizer):
    feature = tokenize_conversation(CONVERSATION, tokenizer, max_length=256)
    ids, labels = feature["input_ids"], feature["labels"]
    assert feature["attention_mask"] == [1] * len(ids)
    # Hand-checked layout of the rendered ChatML (the tiny tokenizer has no newline tokens):
    # <|im_start|> system answer the question about the table . <|im_end|>          -> 0..9
    # <|im_start|> user what is the revenue ? <|im_end|>                              -> 10..17
    # <|im_start|> assistant which year do you mean ? <|im_end|>                      -> 18..26
    # <|im_start|> user 2 0 2 1 <|im_end|>                                            -> 27..33
    # <|im_start|> assistant the revenue is 5 . 2 <|im_end|>                          -> 34..42
    assert len(ids) == 43
    assert labelled_runs(feature) == [list(range(20, 27)), list(range(36, 43))]
    for run, message in zip(labelled_runs(feature), (CONVERSATION[2], CONVERSATION[4])):
        expected = tokenizer(message["content"] + IM_END, add_special_tokens=False)["input_ids"]
        assert [labels[i] for i in run] == [ids[i] for i in run] == expected
        assert ids[run[-1]] == tokenizer.convert_tokens_to_ids(IM_END)
    # The decoded labelled tokens are exactly "content<|im_end|>" (modulo the word tokenizer's lower-casing).
    decoded = [tokenizer.decode([ids[i] for i in run]).replace(" ", "") for run in labelled_runs(feature)]
    assert decoded == ["whichyeardoyoumean?<|im_end|>", "therevenueis5.2<|im_end|>"]


def test_spans_cover_content_and_end_of_turn_but_not_the_newline_after_it(tokenizer):
    text, spans = assistant_spans(CONVERSATION, tokenizer)
    assert [text[start:end] for start, end in spans] == ["Which year do you mean?<|im_end|>",
                                                         "The revenue is 5.2<|im_end|>"]
    assert text[spans[0][1]] == "\n"  # the newline the template writes after <|im_end|> is outside


def test_last_assistant_mode_labels_only_the_final_turn(tokenizer):
    feature = tokenize_conversation(CONVERSATION, tokenizer, max_length=256, loss_on="last_assistant")
    assert labelled_runs(feature) == [list(range(36, 43))]


def test_label_mask_uses_overlap_and_ignores_zero_width_tokens():
    assert label_mask([(0, 3), (3, 5), (5, 5), (5, 9), (9, 12)], [(4, 9)]) == [False, True, False, True, False]


def test_over_long_conversation_raises_or_is_dropped_with_a_count(tokenizer):
    with pytest.raises(ConversationTooLongError, match="trainer.max_length=20"):
        tokenize_conversation(CONVERSATION, tokenizer, max_length=20, truncation="error")
    assert tokenize_conversation(CONVERSATION, tokenizer, max_length=20, truncation="drop") is None
    short = CONVERSATION[:3]  # 27 tokens
    with pytest.warns(UserWarning, match="dropped 1 of 2 conversations"):
        kept = tokenize_conversations([CONVERSATION, short], tokenizer, max_length=30, truncation="drop")
    assert len(kept) == 1 and len(kept[0]["input_ids"]) == 27
    with pytest.raises(ConversationTooLongError, match="every one"):
        tokenize_conversations([CONVERSATION], tokenizer, max_length=30, truncation="drop")


def test_bad_options_and_conversations_fail_loudly(tokenizer):
    with pytest.raises(ConfigError, match="trainer.loss_on"):
        tokenize_conversation(CONVERSATION, tokenizer, 256, loss_on="assistant")
    with pytest.raises(ConfigError, match="trainer.truncation"):
        tokenize_conversation(CONVERSATION, tokenizer, 256, truncation="cut")
    with pytest.raises(DataFormatError, match="no assistant message"):
        tokenize_conversation(CONVERSATION[:2], tokenizer, 256)
    with pytest.raises(DataFormatError, match="end-of-turn"):
        tokenize_conversation(CONVERSATION, tokenizer, 256, end_of_turn="</s>")


def test_template_without_generation_markers_is_masked_the_same(tokenizer):
    """SmolLM2-like template: plain ChatML, no {% generation %} blocks."""
    plain = build_tiny_tokenizer()
    plain.chat_template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    assert tokenize_conversation(CONVERSATION, plain, 256) == tokenize_conversation(CONVERSATION, tokenizer, 256)


def test_collator_masks_padding_by_position_when_pad_equals_eos():
    tokenizer = build_tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token  # SmolLM2: pad id == eos id == <|im_end|>
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos
    long = tokenize_conversation(CONVERSATION, tokenizer, 256)
    short = tokenize_conversation(CONVERSATION[:3], tokenizer, 256)
    batch = RightPadCollator(tokenizer.pad_token_id)([short, long])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 43)
    row_ids, row_labels, row_mask = (batch[key][0].tolist() for key in ("input_ids", "labels", "attention_mask"))
    assert row_mask == [1] * 27 + [0] * 16
    assert row_ids[27:] == [eos] * 16 and row_labels[27:] == [IGNORE_INDEX] * 16
    assert row_ids[26] == eos and row_labels[26] == eos  # the real end-of-turn token stays labelled
    assert row_labels[:27] == short["labels"]
    assert batch["labels"][1].tolist() == long["labels"]
    # Padding to a multiple rounds the length up.
    assert RightPadCollator(eos, pad_to_multiple_of=8)([short])["input_ids"].shape == (1, 32)


def test_trimming_template_with_a_space_before_its_end_of_turn_text():
    """Zephyr/Llama-2-like: roles as tags, trimmed content, ``' </s>'`` closing every turn."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] | trim }}"
        "{{ ' </s>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
    padded = [dict(message) for message in CONVERSATION]
    padded[2]["content"] = "  Which year do you mean?  "
    text, spans = assistant_spans(padded, tokenizer, end_of_turn="</s>")
    assert [text[start:end] for start, end in spans] == ["Which year do you mean? </s>", "The revenue is 5.2 </s>"]
    feature = tokenize_conversation(padded, tokenizer, 256, end_of_turn="</s>")
    labelled = [token for token, label in zip(feature["input_ids"], feature["labels"]) if label != IGNORE_INDEX]
    expected = tokenizer("which year do you mean ? </s> the revenue is 5.2 </s>", add_special_tokens=False)
    assert labelled == expected["input_ids"]


@pytest.mark.slow
def test_smollm2_tokenizer_labels_content_and_im_end_but_not_the_newline():
    """The real SmolLM2 byte-level BPE tokenizer (its template has no generation markers; pad == eos)."""
    from transformers import AutoTokenizer

    from clarifylab.models.smollm2 import find_bundled_gguf

    gguf = find_bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids(IM_END)
    feature = tokenize_conversation(CONVERSATION, tokenizer, 512)
    runs = labelled_runs(feature)
    assert len(runs) == 2
    for run, message in zip(runs, (CONVERSATION[2], CONVERSATION[4])):
        assert tokenizer.decode([feature["input_ids"][i] for i in run]) == message["content"] + IM_END
        after = feature["input_ids"][run[-1] + 1]
        assert tokenizer.decode([after]) == "\n" and feature["labels"][run[-1] + 1] == IGNORE_INDEX
