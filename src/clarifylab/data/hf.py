"""Lossless conversion between Examples and Hugging Face ``datasets`` (conversational format).

Each row keeps every Example field (``meta`` as a JSON string, since its keys differ per task) plus
``messages``: the full gold conversation in chat format, as TRL-style trainers expect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clarifylab.data.chat_format import trajectory_messages
from clarifylab.data.schema import Example

if TYPE_CHECKING:  # datasets is heavy to import
    import datasets


def to_hf_dataset(examples: Sequence[Example], instruction: str | None = None) -> datasets.Dataset:
    """Examples -> ``datasets.Dataset`` with a ``messages`` column; inverse of :func:`from_hf_dataset`."""
    import datasets

    rows = []
    for example in examples:
        row = example.to_dict()
        row["meta"] = json.dumps(row["meta"], sort_keys=True)
        row["messages"] = trajectory_messages(example, instruction)
        rows.append(row)
    return datasets.Dataset.from_list(rows)


def from_hf_dataset(dataset: datasets.Dataset) -> list[Example]:
    """``datasets.Dataset`` rows (as written by :func:`to_hf_dataset`) -> Examples."""
    examples = []
    for row in dataset:
        record = {key: value for key, value in row.items() if key != "messages"}
        record["meta"] = json.loads(record["meta"])
        examples.append(Example.from_dict(record))
    return examples
