"""The m0 score scores the oracle tokens only: padded batches equal unpadded single rows and an independent plain
forward; the context (prompt) and pad positions carry no label; an empty oracle or an over-long row fails loudly."""

from __future__ import annotations

import pytest
import torch

from clarifylab.errors import DataFormatError
from clarifylab.methods.star_gate.oracle_logprob import answer_context, oracle_features, score_oracle_logprobs
from clarifylab.models import build_tiny_model_and_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX

CONVERSATIONS = [
    [{"role": "user", "content": "what is the total revenue"}, {"role": "assistant", "content": "which year ?"},
     {"role": "user", "content": "the last year"}],
    [{"role": "user", "content": "what is the net income"}],
    [{"role": "user", "content": "which company"}, {"role": "assistant", "content": "do you mean the first one ?"},
     {"role": "user", "content": "yes"}, {"role": "assistant", "content": "which quarter"},
     {"role": "user", "content": "the first quarter of the fiscal year"}],
]
ORACLES = ["the answer is one hundred", "two", "it is the first quarter and the total is ten million"]


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    return model.eval(), tokenizer


def plain_forward(model, tokenizer, context, oracle):
    prompt = tokenizer.apply_chat_template(context, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    oracle_ids = tokenizer(oracle, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + oracle_ids])).logits[0].double()
    logps = torch.log_softmax(logits, dim=-1)
    return sum(float(logps[len(prompt_ids) + k - 1, t]) for k, t in enumerate(oracle_ids)), len(oracle_ids)


def test_answer_context_repeats_the_task_in_the_last_user_turn():
    context = answer_context(CONVERSATIONS[0], "what is the total revenue")
    assert context[-1] == {"role": "user", "content": "the last year\n\nwhat is the total revenue"}
    assert context[:-1] == CONVERSATIONS[0][:-1] and CONVERSATIONS[0][-1]["content"] == "the last year"
    with pytest.raises(DataFormatError):
        answer_context(CONVERSATIONS[0][:2], "x")


def test_only_oracle_tokens_are_labelled(tiny):
    _, tokenizer = tiny
    feature = oracle_features(CONVERSATIONS[1], ORACLES[1], tokenizer)
    oracle_ids = tokenizer(ORACLES[1], add_special_tokens=False)["input_ids"]
    labelled = [label for label in feature["labels"] if label != IGNORE_INDEX]
    assert labelled == oracle_ids and feature["input_ids"][-len(oracle_ids):] == oracle_ids
    assert all(label == IGNORE_INDEX for label in feature["labels"][:-len(oracle_ids)])


def test_padded_batches_equal_single_rows_and_a_plain_forward(tiny):
    model, tokenizer = tiny
    batched = score_oracle_logprobs(model, tokenizer, CONVERSATIONS, ORACLES, batch_size=3)
    single = [score_oracle_logprobs(model, tokenizer, [c], [o], batch_size=1)[0]
              for c, o in zip(CONVERSATIONS, ORACLES)]
    plain = [plain_forward(model, tokenizer, c, o) for c, o in zip(CONVERSATIONS, ORACLES)]
    for (b, nb), (s, ns), (p, npl) in zip(batched, single, plain):
        assert nb == ns == npl and b == pytest.approx(s, abs=1e-5) and b == pytest.approx(p, abs=1e-4)
    assert [n for _, n in batched] == [5, 1, 11]  # words of each oracle: pads and prompt add nothing


def test_scoring_fails_loudly(tiny):
    model, tokenizer = tiny
    with pytest.raises(DataFormatError, match="empty oracle"):
        score_oracle_logprobs(model, tokenizer, CONVERSATIONS[:1], ["  "])
    with pytest.raises(DataFormatError, match="score_max_length"):
        score_oracle_logprobs(model, tokenizer, CONVERSATIONS[:1], ORACLES[:1], max_length=5)
