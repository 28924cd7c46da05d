"""Sequence log-probs of labelled tokens (hand-built case, shift, gradients) and the concatenated forward."""

from __future__ import annotations

import math

import pytest
import torch

from clarifylab.models import build_tiny_model_and_tokenizer
from clarifylab.training.chat_tokenize import IGNORE_INDEX
from clarifylab.training.logprobs import concatenated_forward, pad_batch_to_length, sequence_logprobs

X = IGNORE_INDEX


def test_hand_built_case_sums_shifted_label_logprobs():
    logits = torch.zeros(2, 4, 3)
    logits[0, 0] = torch.log(torch.tensor([1.0, 2.0, 1.0]))  # predicts position 1: p(token 1) = 0.5
    logits[0, 1] = torch.log(torch.tensor([1.0, 1.0, 2.0]))  # predicts position 2: p(token 0) = 0.25
    logits[0, 2] = torch.tensor([50.0, -50.0, 0.0])  # predicts position 3, which is not labelled
    logits[0, 3] = torch.tensor([9.0, 9.0, -9.0])  # the last position predicts nothing
    logits[1, 2] = torch.log(torch.tensor([3.0, 1.0, 0.0 + 1e-30]))  # row 1, position 3: p(token 0) = 0.75
    labels = torch.tensor([[X, 1, 0, X], [X, X, X, 0]])
    logits.requires_grad_(True)
    sums, counts = sequence_logprobs(logits, labels)
    assert counts.tolist() == [2, 1] and counts.dtype == torch.int64
    assert sums.dtype == torch.float32
    assert sums.tolist() == pytest.approx([math.log(0.5 * 0.25), math.log(0.75)], abs=1e-6)
    sums.sum().backward()
    used = logits.grad.abs().sum(dim=-1) > 0
    assert used.tolist() == [[True, True, False, False], [False, False, True, False]]


def test_row_without_labels_scores_zero_and_matches_a_naive_float64_computation():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=generator).to(torch.bfloat16)
    labels = torch.randint(0, 11, (3, 7), generator=generator)
    labels[0, :4] = X
    labels[2] = X
    sums, counts = sequence_logprobs(logits, labels)
    full = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
    targets = labels[:, 1:]
    keep = targets != X
    naive = (full.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep).sum(-1)
    assert torch.allclose(sums.double(), naive, atol=1e-4)
    assert counts.tolist() == [3, 6, 0] and sums[2].item() == 0.0


def test_pad_batch_to_length_masks_the_new_positions():
    batch = {"input_ids": torch.tensor([[5, 6]]), "attention_mask": torch.tensor([[1, 1]]),
             "labels": torch.tensor([[X, 6]])}
    padded = pad_batch_to_length(batch, 4, pad_token_id=1)
    assert padded["input_ids"].tolist() == [[5, 6, 1, 1]]
    assert padded["attention_mask"].tolist() == [[1, 1, 0, 0]]
    assert padded["labels"].tolist() == [[X, 6, X, X]]
    with pytest.raises(ValueError):
        pad_batch_to_length(batch, 1, pad_token_id=1)


def side(rows: list[list[int]], labelled_from: list[int]) -> dict[str, torch.Tensor]:
    """A right-padded batch: row ``i`` labels its tokens from ``labelled_from[i]`` on."""
    length = max(len(row) for row in rows)
    ids = [row + [0] * (length - len(row)) for row in rows]
    mask = [[1] * len(row) + [0] * (length - len(row)) for row in rows]
    labels = [[token if start <= position < len(row) else X for position, token in enumerate(padded)]
              for row, padded, start in zip(rows, ids, labelled_from)]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def test_concatenated_forward_runs_once_over_2b_rows_and_equals_separate_forwards():
    model, _ = build_tiny_model_and_tokenizer(seed=0)
    chosen = side([[2, 10, 11, 12, 3], [2, 10, 13, 3]], [2, 2])
    rejected = side([[2, 10, 11, 14, 15, 16, 17, 3], [2, 10, 18, 3]], [2, 2])  # longer: chosen gets padded
    shapes = []
    model.register_forward_hook(lambda module, args, kwargs, output: shapes.append(tuple(kwargs["input_ids"].shape)),
                                with_kwargs=True)
    scored = concatenated_forward(model, chosen, rejected, pad_token_id=1)
    assert shapes == [(4, 8)]
    for batch, logps, tokens in ((chosen, scored.chosen_logps, scored.chosen_tokens),
                                 (rejected, scored.rejected_logps, scored.rejected_tokens)):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        alone, counts = sequence_logprobs(logits, batch["labels"])
        assert torch.allclose(logps, alone, atol=1e-5)
        assert tokens.tolist() == counts.tolist()
    assert scored.chosen_tokens.tolist() == [3, 2] and scored.rejected_tokens.tolist() == [6, 2]
    with pytest.raises(ValueError, match="rejected rows"):
        concatenated_forward(model, chosen, side([[2, 3, 3]], [1]), pad_token_id=1)


def test_only_the_logits_from_the_first_scored_position_on_are_computed():
    from clarifylab.training.logprobs import first_scored_position

    assert first_scored_position(torch.tensor([[X, X, X, 5, 6], [X, X, 4, 5, X]])) == 1
    assert first_scored_position(torch.tensor([[X, 7], [X, X]])) == 0
    assert first_scored_position(torch.tensor([[X, X]])) == 0  # nothing scored: keep everything
    model, _ = build_tiny_model_and_tokenizer(seed=0)
    chosen = side([[2, 10, 11, 12, 13, 3], [2, 10, 19, 20, 13, 3]], [4, 3])
    rejected = side([[2, 10, 11, 12, 14, 15, 3], [2, 10, 19, 20, 18, 3]], [5, 4])
    kept = []
    model.register_forward_hook(lambda module, args, kwargs, output: kept.append(
        (kwargs.get("logits_to_keep"), tuple(output.logits.shape))), with_kwargs=True)
    scored = concatenated_forward(model, chosen, rejected, pad_token_id=1)
    assert kept == [(5, (4, 5, model.config.vocab_size))]  # positions 2..6 of 7: the first label sits at 3
    for batch, logps in ((chosen, scored.chosen_logps), (rejected, scored.rejected_logps)):
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert torch.allclose(logps, sequence_logprobs(full, batch["labels"])[0], atol=1e-5)
