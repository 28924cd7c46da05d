"""Hydra glue shared by the entry points: resolvers, offline defaults, user-facing error handling."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from clarifylab.errors import ClarifyLabError
from clarifylab.schemas import validate_config

log = logging.getLogger("clarifylab")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package was imported from. Entry points put their own checkout's ``src/`` first on
``sys.path``, so this is the checkout whose ``train.py`` / ``evaluate.py`` / ``generate.py`` runs."""

# The run folder suffix: one value per process (pid + 4 random hex digits), or $CLARIFYLAB_RUN_ID for launchers that
# start every rank with the same command; two runs started in the same second get different run folders.
RUN_ID_ENV = "CLARIFYLAB_RUN_ID"
_RUN_SUFFIX = os.environ.get(RUN_ID_ENV) or f"{os.getpid()}{secrets.token_hex(2)}"

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


def run_stamp() -> str:
    """``<YYYY-mm-dd_HH-MM-SS>_<pid><4 hex>``: the last part of every run and sweep directory (``${run_stamp:}``).

    The suffix is fixed per process and differs between processes (pid + random), so runs started in the same
    second never share a folder.
    """
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{_RUN_SUFFIX}"


def data_tag(dataset: str, conversations: int | None = None, seed: int = 0, pseudo_labels: bool = False,
             random_actions: bool = False, ablation: str | None = "none") -> str:
    """``<dataset>[-c<N>][-pseudo][-random][-<ablation>][-s<seed>]``: the one naming rule for what distinguishes
    ACT data and runs (``${data_tag:...}`` in the Alg. 1 ``out_dir``, ACT's default pairs paths and ``run_name``).

    Defaults are left out (all conversations, gold labels, no ablation, seed 0), so the plain names stay short:
    ``data_tag("pacific", 50)`` = ``pacific-c50``; ``data_tag("pacific", 50, 1, True)`` = ``pacific-c50-pseudo-s1``.
    """
    parts = [str(dataset)]
    if conversations is not None:
        parts.append(f"c{conversations}")
    if pseudo_labels:
        parts.append("pseudo")      # Alg. 1 actions from the classifier (ACT Table 4)
    if random_actions:
        parts.append("random")      # Alg. 1 actions drawn at random at build time
    if ablation not in (None, "", "none"):
        parts.append(str(ablation))
    if int(seed) != 0:
        parts.append(f"s{seed}")
    return "-".join(parts)


def register_resolvers() -> None:
    """Register ``${clarifylab_root:}`` (the repository root), ``${run_stamp:}`` and ``${data_tag:...}`` once.

    ``run_stamp`` is cached per config, like Hydra's ``${now:}``: a sweep's jobs see the directory their parent made.
    """
    if not OmegaConf.has_resolver("clarifylab_root"):
        OmegaConf.register_new_resolver("clarifylab_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)
    if not OmegaConf.has_resolver("data_tag"):
        OmegaConf.register_new_resolver("data_tag", data_tag)


def apply_offline_defaults() -> None:
    """Set the offline environment variables that are not already set."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def report_error(error: ClarifyLabError) -> NoReturn:
    """Print ``error: <message>`` once on stderr, record it in the run's log file (if any), exit with status 2."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (error,), None)
    for handler in logging.getLogger().handlers:  # the file only: the console gets the one printed line
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def entry_point(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task function: ClarifyLab errors print one clear line and exit with status 2."""

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            validate_config(cfg)  # schema check of every config group (clarifylab/schemas/), before anything loads
            return main(cfg)
        except ClarifyLabError as error:
            report_error(error)

    return wrapper


def select(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """``OmegaConf.select`` that raises a clear error for missing mandatory (``???``) values."""
    return OmegaConf.select(cfg, key, default=default, throw_on_missing=True)
