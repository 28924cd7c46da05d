"""The DataModule of fixed preference pairs (DPO, IRPO's and ACT's pair sets).

It is the SFT DataModule with pairs in place of Examples: the same one-time tokenization in
``setup``, the same :class:`ResumableSampler` order (a pure function of seed and epoch), the same
checkpointed data position (exact mid-epoch resume), and :class:`PreferenceCollator` batches.
(The base class calls its items "examples"; here they are :class:`PreferencePair` objects.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import DataLoader

from clarifylab.errors import ConfigError
from clarifylab.training.preference_data import (
    PreferenceCollator,
    PreferencePair,
    TokenizedPair,
    pad_token_id_of,
    tokenize_pairs,
)
from clarifylab.training.resumable_sampler import ResumableSampler
from clarifylab.training.sft_data import SFTDataModule


class PreferenceDataModule(SFTDataModule):
    """Training and validation batches of preference pairs.

    Args:
        train_pairs, val_pairs: the pairs (``val_pairs`` may be empty: no validation).
        tokenizer: a fast HF tokenizer with a chat template.
        batch_size: training micro-batch size (pairs) per device.
        eval_batch_size: validation batch size (pairs).
        max_length: maximum tokens of ``prompt + continuation`` per side.
        seed: seed of the per-epoch shuffling.
        num_workers: DataLoader worker processes.
        truncation: ``drop`` | ``error`` for a pair with a side longer than ``max_length``.
        end_of_turn: end-of-turn text of the chat template (``None`` = detect).

    Batches are :class:`PreferenceBatch` objects (``B`` pairs, chosen/rejected tensors ``(B, T)``).
    """

    def __init__(self, train_pairs: Sequence[PreferencePair], val_pairs: Sequence[PreferencePair], tokenizer: Any,
                 batch_size: int, eval_batch_size: int, max_length: int, seed: int = 0, num_workers: int = 0,
                 truncation: str = "drop", end_of_turn: str | None = None) -> None:
        if not train_pairs:
            raise ConfigError("no training pairs: check trainer.pairs_path")
        super().__init__(train_pairs, val_pairs, tokenizer, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         max_length=max_length, seed=seed, num_workers=num_workers, truncation=truncation,
                         end_of_turn=end_of_turn)
        self.collator = PreferenceCollator(pad_token_id_of(tokenizer))

    @property
    def train_pairs(self) -> list[PreferencePair]:
        return self.train_examples

    @property
    def val_pairs(self) -> list[PreferencePair]:
        return self.val_examples

    def _tokenize(self, pairs: Sequence[PreferencePair], what: str) -> list[TokenizedPair]:
        return tokenize_pairs(pairs, self.tokenizer, self.max_length, self.truncation, self.end_of_turn,
                              what=what.replace("conversations", "pairs"))

    def reference_dataloaders(self) -> dict[str, DataLoader]:
        """Unshuffled, unsharded loaders over every training and validation pair (``eval_batch_size``),
        for precomputing reference log-probs once: ``{"train": ..., "val": ...}`` (``val`` only when
        there are validation pairs)."""
        self.setup()
        loaders = {}
        for split, dataset in (("train", self.train_set), ("val", self.val_set)):
            if len(dataset):
                loaders[split] = self._loader(dataset, ResumableSampler(len(dataset), shuffle=False),
                                              self.eval_batch_size)
        return loaders
