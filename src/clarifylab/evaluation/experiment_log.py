"""Send an evaluation to the configured experiment loggers (``conf/logger``): the numeric metrics to
every logger, and a table of sampled trajectories to those that take tables (W&B).

Logger nodes are the same as training's (``pytorch_lightning.loggers.WandbLogger`` / ``CSVLogger``),
so ``logger=wandb`` writes an offline W&B run under ``<run dir>/wandb/`` unless ``WANDB_MODE=online``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import hydra

from clarifylab.evaluation.evaluator import TrajectoryRecord
from clarifylab.evaluation.outputs import flatten

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["id", "interpretation", "gold_action", "predicted_action", "first_response", "outcome", "goal",
                 "turn_h", "trajectory_h", "n_clarifications", "hit_turn_limit", "conversation"]


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """The numbers of ``metrics`` (nested usage flattened with ``/``), keyed ``<prefix><name>``; booleans,
    strings and None are left out."""
    return {f"{prefix}{key}": float(value) for key, value in flatten(metrics).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def trajectory_rows(records: Sequence[TrajectoryRecord], max_rows: int) -> list[list[Any]]:
    """The first ``max_rows`` records as table rows in :data:`TABLE_COLUMNS` order."""
    rows = []
    for record in records[:max_rows]:
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in record.turns)
        rows.append([record.id, record.interpretation, record.gold_action, record.predicted_action,
                     record.first_response, record.outcome, record.goal, record.turn_h, record.trajectory_h,
                     record.n_clarifications, record.hit_turn_limit, conversation])
    return rows


def log_evaluation(logger_cfg: Any, metrics: Mapping[str, Any], records: Sequence[TrajectoryRecord],
                   max_rows: int = 50) -> list[str]:
    """Instantiate every logger node of ``logger_cfg`` (a mapping name -> ``_target_`` node; empty = none),
    log the metrics (and the trajectory table where supported), then close them.

    Returns:
        the names of the loggers written to.
    """
    if not logger_cfg:
        return []

    written = []
    for name, node in logger_cfg.items():
        if not isinstance(node, Mapping) or "_target_" not in node:
            continue
        experiment_logger = hydra.utils.instantiate(node)
        experiment_logger.log_metrics(numeric_metrics(metrics), step=0)
        if hasattr(experiment_logger, "log_table") and max_rows > 0:
            experiment_logger.log_table("eval/trajectories", columns=TABLE_COLUMNS,
                                        data=trajectory_rows(records, max_rows))
        experiment_logger.save()
        experiment_logger.finalize("success")
        run = getattr(experiment_logger, "_experiment", None)
        if run is not None and hasattr(run, "finish"):
            run.finish()  # flush the (offline) W&B run now, not at interpreter exit
        written.append(str(name))
        log.info("logged the evaluation to %s", name)
    return written
