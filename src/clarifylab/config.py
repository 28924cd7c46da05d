"""Hydra glue shared by the entry points: resolvers, offline defaults, user-facing error handling."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarifylab.errors import ClarifyLabError

log = logging.getLogger("clarifylab")

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# No model/dataset hub is reachable on the machines this runs on by default; W&B stays offline.
# Each can be overridden from the environment (e.g. HF_HUB_OFFLINE=0 for a Hub model on a cluster).
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "TOKENIZERS_PARALLELISM": "false",
}


def register_resolvers() -> None:
    """Register ``${clarifylab_root:}`` (the repository root) once."""
    if not OmegaConf.has_resolver("clarifylab_root"):
        OmegaConf.register_new_resolver("clarifylab_root", lambda: str(PROJECT_ROOT))


def apply_offline_defaults() -> None:
    """Set the offline environment variables that are not already set."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def entry_point(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task function: ClarifyLab errors print one clear line and exit with status 2."""

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except ClarifyLabError as error:
            log.error("%s", error)
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def select(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """``OmegaConf.select`` that raises a clear error for missing mandatory (``???``) values."""
    return OmegaConf.select(cfg, key, default=default, throw_on_missing=True)
