"""Right-padding collation of tokenized conversations into tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clarifylab.training.chat_tokenize import IGNORE_INDEX

if TYPE_CHECKING:
    import torch


class RightPadCollator:
    """Pad ``{"input_ids", "attention_mask", "labels"}`` lists to the longest row, on the right.

    Padding positions get ``pad_token_id`` as input, 0 in the attention mask and ``IGNORE_INDEX`` as
    label — by position, never by token id, so a tokenizer whose pad id equals its EOS id (SmolLM2)
    keeps its real end-of-turn tokens labelled.

    Args:
        pad_token_id: id written into padding positions (any valid id; they are masked).
        pad_to_multiple_of: round the padded length up to a multiple of this (tensor-core friendly).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Returns ``input_ids``, ``attention_mask``, ``labels``: int64 tensors of shape ``(batch, length)``."""
        import torch

        length = max(len(feature["input_ids"]) for feature in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        batch = {}
        for key, value in fill.items():
            rows = [feature[key] + [value] * (length - len(feature[key])) for feature in features]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        return batch
