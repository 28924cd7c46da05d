"""ResumableSampler: order is a pure function of (seed, epoch); skipping, sharding, no global RNG use."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler

from clarifylab.training.resumable_sampler import ResumableSampler


def batches(sampler: ResumableSampler, batch_size: int = 3) -> list[list[int]]:
    return list(BatchSampler(sampler, batch_size, drop_last=False))


def test_each_epoch_is_a_seeded_permutation_that_changes_with_the_epoch():
    sampler = ResumableSampler(10, shuffle=True, seed=7)
    first = list(sampler)
    assert sorted(first) == list(range(10))
    assert list(ResumableSampler(10, shuffle=True, seed=7)) == first  # deterministic
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(10)) and second != first
    assert list(ResumableSampler(10, seed=8)) != first
    assert list(ResumableSampler(10, shuffle=False)) == list(range(10))


def test_resume_skips_the_consumed_batches_once():
    full = ResumableSampler(10, seed=3, epoch=2)
    expected = batches(full)  # [[..3], [..3], [..3], [..1]]
    resumed = ResumableSampler(10, seed=3, epoch=2, skip=2 * 3)
    assert len(BatchSampler(resumed, 3, drop_last=False)) == 4  # Lightning counts the skipped batches as done
    assert batches(resumed) == expected[2:]
    assert batches(resumed) == expected  # the skip is one-shot
    resumed.resume_at(2, skip=3)
    resumed.set_epoch(3)  # a different epoch than the resume point: no skipping
    assert batches(resumed) == batches(ResumableSampler(10, seed=3, epoch=3))


def test_ranks_get_disjoint_equal_shards_that_cover_the_data():
    shards = [list(ResumableSampler(7, seed=0, rank=rank, world_size=3)) for rank in range(3)]
    assert [len(shard) for shard in shards] == [3, 3, 3]  # padded by wrapping around to 9
    assert set().union(*shards) == set(range(7))
    interleaved = [shards[rank][i] for i in range(3) for rank in range(3)]
    assert interleaved[:7] == list(ResumableSampler(7, seed=0))  # rank r takes every 3rd index from r


def test_shuffling_neither_reads_nor_advances_the_global_rng():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    order = list(ResumableSampler(20, seed=5))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    assert list(ResumableSampler(20, seed=5)) == order
