"""A sampler whose order is a pure function of (seed, epoch), so training can resume mid-epoch.

Lightning 2.6 restores its loop counters from a checkpoint but replays the dataloader from the
start of the epoch (it only warns that "your dataloader is not resumable"). This sampler is told,
on resume, how many examples of which epoch were already consumed and skips exactly those, so the
continued run sees the batches the uninterrupted run would have seen. Shuffling uses its own
``torch.Generator`` seeded with ``seed + epoch``: it neither reads nor advances the global RNG.

Wrap it in ``torch.utils.data.BatchSampler``: Lightning calls ``set_epoch`` on
``dataloader.batch_sampler.sampler`` at every epoch start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Yield this rank's dataset indices for the current epoch.

    Args:
        num_examples: dataset size.
        shuffle: permute the indices every epoch (``seed + epoch``) or keep dataset order.
        seed: base seed of the permutation.
        rank, world_size: this process's shard under data parallelism. Indices are padded by
            wrapping around to a multiple of ``world_size`` (as ``DistributedSampler`` does), so every
            rank gets the same number of them.
        epoch: the epoch the first ``iter()`` serves (``set_epoch`` changes it; Lightning calls it).
        skip: indices of ``epoch`` already consumed (e.g. ``batches_consumed * batch_size``); skipped
            once, by the next ``iter()`` of that epoch.

    ``len()`` is always the full per-rank epoch length (Lightning counts skipped batches as done).
    """

    def __init__(self, num_examples: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 epoch: int = 0, skip: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
        self.num_examples = num_examples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = epoch
        self.resume_at(epoch, skip)

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (hence the permutation) of the next ``iter()``."""
        self.epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        """Serve ``epoch`` next, without its first ``skip`` indices (once)."""
        self.epoch = epoch
        self._skip_epoch = epoch
        self._skip = skip

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in the order they are served (before any skipping)."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            order = torch.randperm(self.num_examples, generator=generator).tolist()
        else:
            order = list(range(self.num_examples))
        if self.world_size > 1 and order:
            padded = len(self) * self.world_size
            order = (order * math.ceil(padded / len(order)))[:padded]
            order = order[self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[int]:
        # A generator: this body runs at the first next(), i.e. after Lightning's set_epoch.
        epoch = self.epoch
        skip = self._skip if epoch == self._skip_epoch else 0
        self._skip = 0  # one-shot: later epochs (and re-iterations) start from their first index
        yield from self.epoch_indices(epoch)[skip:]

    def order_settings(self) -> dict[str, Any]:
        """What fixes the order (to check that a resumed run uses the same data)."""
        return {"num_examples": self.num_examples, "shuffle": self.shuffle, "seed": self.seed,
                "world_size": self.world_size}
