"""Shared-prefix prefill (backends/shared_prefill.py): the walk order and reuse arithmetic on hand cases, and each
row's walked cache equal (1e-5, fp32) to the cache of a plain forward over the row."""

from __future__ import annotations

import pytest
import torch

from clarifylab.backends.decode_pool import poolable_cache
from clarifylab.backends.shared_prefill import (
    common_prefix,
    lexicographic_order,
    prefix_walk,
    reuse_lengths,
    worth_sharing,
)
from clarifylab.models.tiny import build_tiny_model_and_tokenizer


def test_lexicographic_order_puts_shared_prefixes_side_by_side():
    rows = [[1, 2, 9], [3], [1, 2, 3, 4], [1, 2, 3]]
    assert lexicographic_order(rows) == [3, 2, 0, 1]  # [1,2,3] < [1,2,3,4] < [1,2,9] < [3]


def test_common_prefix_and_reuse_lengths():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and common_prefix([], [1]) == 0
    rows = [[1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [7, 8]]
    # row 1 reuses row 0's cached [1, 2] (row 0 caches all but its last token); row 2 reuses [1, 2, 3, 4];
    # row 3 shares nothing
    assert reuse_lengths(rows) == [0, 2, 4, 0]
    # a previous row (from an earlier refill) lets the first row continue too
    assert reuse_lengths(rows[1:], previous=[1, 2, 3]) == [2, 4, 0]
    # identical rows: all the cached tokens (all but the last) are reused
    assert reuse_lengths([[4, 5, 6], [4, 5, 6]]) == [0, 2]


def test_worth_sharing_needs_a_quarter_reused_and_two_tokens_per_row():
    assert worth_sharing([[1, 2, 3, 4, 5], [1, 2, 3, 4, 6]])  # 4 of 8 cached tokens reused
    assert not worth_sharing([[1, 2, 3, 4, 5], [7, 2, 3, 4, 6]])
    assert not worth_sharing([[1], [1, 2]])


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model_and_tokenizer(seed=0)


def test_walked_caches_equal_a_plain_forward_per_row(tiny):
    model, _ = tiny
    assert poolable_cache(model)
    rows = [[5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 11, 12, 13], [5, 6, 7, 8, 11, 12, 14], [20, 21, 22], [20, 21, 22]]
    with torch.inference_mode():
        per_row, computed = prefix_walk(model, rows)
        assert computed == 5 + 2 + 0 + 2 + 0  # the trie of the rows' cached parts
        for row, layers in zip(rows, per_row):
            plain = model(input_ids=torch.tensor([row[:-1]]), use_cache=True).past_key_values
            assert len(layers) == len(plain.layers)
            for (keys, values), layer in zip(layers, plain.layers):
                assert keys.shape == layer.keys.shape == (1, keys.shape[1], len(row) - 1, keys.shape[3])
                torch.testing.assert_close(keys, layer.keys, atol=1e-5, rtol=0)
                torch.testing.assert_close(values, layer.values, atol=1e-5, rtol=0)


def test_walk_continues_from_a_previous_row(tiny):
    model, _ = tiny
    first, second = [5, 6, 7, 8, 9], [5, 6, 7, 8, 10, 11]
    with torch.inference_mode():
        (first_layers,), _ = prefix_walk(model, [first])
        (layers,), computed = prefix_walk(model, [second], previous=(first, first_layers))
        plain = model(input_ids=torch.tensor([second[:-1]]), use_cache=True).past_key_values
    assert computed == 1  # [5, 6, 7, 8] came from the previous row's cache
    torch.testing.assert_close(layers[0][0], plain.layers[0].keys, atol=1e-5, rtol=0)
