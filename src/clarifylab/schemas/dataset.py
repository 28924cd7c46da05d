"""``dataset`` group schemas (``conf/dataset/*.yaml``), chosen by ``dataset.name``.

``DatasetSchema`` holds what every dataset has (splits, instruction, example caps); ``ConversationSplitSchema``
adds the seeded conversation-level split of a native file (``data/splits.py``: PACIFIC, Abg-CoQA, TAT-QA, WTQ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from clarifylab.schemas.fields import required


@dataclass
class DatasetSchema:
    """Keys every dataset has."""

    name: str = required()
    instruction: Optional[str] = required()
    train_split: str = required()
    val_split: Optional[str] = required()
    eval_split: str = required()
    max_train_examples: Optional[int] = required()
    max_val_examples: Optional[int] = required()
    max_eval_examples: Optional[int] = required()


@dataclass
class SyntheticTablesSchema(DatasetSchema):
    """dataset=synthetic_tables: the generated corpus in ``dir``."""

    dir: str = required()
    auto_generate: bool = required()
    kinds: Optional[list[str]] = required()            # question kinds; null = all (data/synthetic_tables.py)
    layout: str = required()                           # grid | sentences
    entities_per_table: Optional[int] = required()
    metrics_per_table: Optional[int] = required()
    whole_numbers: bool = required()


@dataclass
class AmbigSQLSchema(DatasetSchema):
    """dataset=ambigsql: a ``task=ambigsql`` build in ``dir``; ``conversations`` picks nested training subsets."""

    dir: str = required()
    conversations: Optional[int] = required()
    subset_seed: int = required()
    ignore_column_order: bool = required()


@dataclass
class ConversationSplitSchema(DatasetSchema):
    """A native file split by conversation (``data/splits.py``: ``SplitPlan``)."""

    max_context_chars: Optional[int] = required()
    eval_fraction: float = required()
    split_seed: int = required()
    val_conversations: int = required()
    conversations: Optional[int] = required()
    subset_seed: int = required()


@dataclass
class NativeFileSchema(ConversationSplitSchema):
    """dataset=pacific|abg_coqa|tatqa: one upstream JSON file at ``path``."""

    path: str = required()


@dataclass
class WTQSchema(ConversationSplitSchema):
    """dataset=wtq: the WikiTableQuestions folder ``dir`` and a question file ``tsv`` in it."""

    dir: str = required()
    tsv: str = required()


@dataclass
class StarGateSchema(DatasetSchema):
    """dataset=stargate: the native persona-task folder ``dir`` (``data/loaders/stargate.py``); personas and oracle
    answers may come from generate.py builds; ``max_tasks`` x ``max_personas`` pairs per split."""

    dir: str = required()
    personas_dir: Optional[str] = required()
    oracle_dir: Optional[str] = required()
    max_tasks: Optional[int] = required()
    max_personas: Optional[int] = required()


@dataclass
class TSCurriculumSchema(DatasetSchema):
    """dataset=ts_curriculum: a ``task=ts_curriculum`` build in ``dir`` (``data/loaders/ts_curriculum.py``)."""

    dir: str = required()


DATASETS: dict[str, type] = {
    "synthetic_tables": SyntheticTablesSchema,
    "ambigsql": AmbigSQLSchema,
    "pacific": NativeFileSchema,
    "abg_coqa": NativeFileSchema,
    "tatqa": NativeFileSchema,
    "wtq": WTQSchema,
    "ts_curriculum": TSCurriculumSchema,
    "stargate": StarGateSchema,
}
