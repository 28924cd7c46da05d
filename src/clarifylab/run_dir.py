"""Run directories: every run gets its own folder, and a run never writes into a folder that holds another one.

Default folders end in ``${run_stamp:}`` (``clarifylab.config.run_stamp``: time + a per-process suffix), so they
are new by construction. A folder given explicitly (``hydra.run.dir=X``, ``hydra.sweep.dir=X``) that already holds
files is refused before Hydra writes anything into it, unless the run continues that folder's work on purpose:
``reuse_run_dir=true`` (IRPO's skip of finished iterations, a re-run sweep step) or ``resume=<ckpt>`` (train.py).
The check is a Hydra callback (conf/hydra/callbacks/run_dir_guard.yaml) selected by every top-level config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from clarifylab.config import report_error
from clarifylab.errors import ConfigError


def reuse_allowed(cfg: DictConfig) -> bool:
    """True when the run may write into a folder that already holds files: ``reuse_run_dir=true``, a
    ``resume=<ckpt>``, or a DDP child process (Lightning restarts the script with the parent's ``hydra.run.dir``)."""
    child = int(os.environ.get("LOCAL_RANK", "0") or 0) > 0
    return bool(OmegaConf.select(cfg, "reuse_run_dir", default=False) or OmegaConf.select(cfg, "resume", default=None)
                or child)


def check_run_dir(key: str, directory: str | os.PathLike[str], allowed: bool) -> None:
    """Raise when ``directory`` (the value of ``key``) exists, is not empty and reuse is not ``allowed``.

    Raises:
        ConfigError: naming the key, the folder, a few of its entries and what to do.
    """
    path = Path(directory)
    if allowed or not path.is_dir():
        return
    entries = sorted(p.name for p in path.iterdir())
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise ConfigError(f"{key}={path} already holds a run ({shown}); choose a new folder (or drop {key} for a "
                          f"fresh one), or pass reuse_run_dir=true to write into it on purpose")


def _guard(cfg: DictConfig, key: str) -> None:
    HydraConfig.instance().set_config(cfg)  # the run.dir interpolations read ${hydra:runtime.choices...}
    try:
        check_run_dir(key, OmegaConf.select(cfg, key), reuse_allowed(cfg))
    except ConfigError as error:
        report_error(error)


class RunDirGuard(Callback):
    """Hydra callback: refuse an explicit run / sweep folder that already holds files (see the module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _guard(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _guard(config, "hydra.sweep.dir")
