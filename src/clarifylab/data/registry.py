"""Dataset name -> Examples. One place that knows every dataset the configs can name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarifylab.data.loaders.abg_coqa import load_abg_coqa
from clarifylab.data.loaders.pacific import load_pacific
from clarifylab.data.loaders.spider import load_ambigsql_split
from clarifylab.data.loaders.stargate import load_stargate
from clarifylab.data.loaders.tatqa import load_tatqa
from clarifylab.data.loaders.ts_curriculum import load_ts_curriculum_split
from clarifylab.data.loaders.wtq import load_wtq
from clarifylab.data.schema import Example
from clarifylab.data.splits import SplitPlan, select_split
from clarifylab.data.synthetic_tables import (
    check_synthetic_design,
    load_synthetic_split,
    synthetic_design,
    write_synthetic_corpus,
)
from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)


def _load_synthetic_tables(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    out_dir = Path(dataset_cfg.dir)
    design = synthetic_design(dataset_cfg)
    if not (out_dir / f"{split}.jsonl").exists() and dataset_cfg.auto_generate:
        log.info("synthetic_tables not found in %s: generating it (%s)", out_dir, design)
        write_synthetic_corpus(out_dir, **design)
    check_synthetic_design(out_dir, design)
    return load_synthetic_split(out_dir, split)


def _load_pacific(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    examples = load_pacific(dataset_cfg.path, max_context_chars=dataset_cfg.max_context_chars)
    return select_split(examples, split, SplitPlan.from_config(dataset_cfg))


def _load_abg_coqa(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    examples = load_abg_coqa(dataset_cfg.path, max_context_chars=dataset_cfg.max_context_chars)
    return select_split(examples, split, SplitPlan.from_config(dataset_cfg))


def _load_tatqa(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    examples = load_tatqa(dataset_cfg.path, max_context_chars=dataset_cfg.max_context_chars)
    return select_split(examples, split, SplitPlan.from_config(dataset_cfg))


def _load_wtq(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    examples = load_wtq(dataset_cfg.dir, dataset_cfg.tsv, max_context_chars=dataset_cfg.max_context_chars)
    return select_split(examples, split, SplitPlan.from_config(dataset_cfg))


def _load_ambigsql(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    return load_ambigsql_split(dataset_cfg.dir, split, dataset_cfg.conversations if split == "train" else None,
                               dataset_cfg.subset_seed)


def _load_stargate(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    return load_stargate(dataset_cfg.dir, split, dataset_cfg.personas_dir, dataset_cfg.oracle_dir,
                         dataset_cfg.max_tasks, dataset_cfg.max_personas)


def _load_ts_curriculum(dataset_cfg: Any, split: str, paths: Any) -> list[Example]:
    return load_ts_curriculum_split(dataset_cfg.dir, split)


LOADERS: dict[str, Callable[[Any, str, Any], list[Example]]] = {
    "synthetic_tables": _load_synthetic_tables,
    "pacific": _load_pacific,
    "abg_coqa": _load_abg_coqa,
    "tatqa": _load_tatqa,
    "wtq": _load_wtq,
    "ts_curriculum": _load_ts_curriculum,
    "ambigsql": _load_ambigsql,
    "stargate": _load_stargate,
}


def load_dataset_split(dataset_cfg: Any, split: str, paths: Any = None, max_examples: int | None = None) -> list[Example]:
    """Load ``split`` of the dataset that ``dataset_cfg.name`` names, optionally the first ``max_examples``.

    Raises:
        ConfigError: unknown dataset name (the message lists the known ones).
    """
    name = dataset_cfg.name
    if name not in LOADERS:
        raise ConfigError(f"dataset.name={name!r} is not a known dataset; choose one of {sorted(LOADERS)} "
                          f"(e.g. `dataset=synthetic_tables`)")
    examples = LOADERS[name](dataset_cfg, split, paths)
    return examples[:max_examples] if max_examples else examples
