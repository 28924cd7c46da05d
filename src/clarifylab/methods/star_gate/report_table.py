"""STaR-GATE win rates in ``experiments/report.py``: one row per run configuration and evaluated model m_t.

A ``protocol=star_gate_win_rate`` run's ``metrics.json`` (:mod:`~clarifylab.methods.star_gate.win_rate_eval`) holds
one entry per model m_t (t >= 1) under :data:`WIN_RATE_KEY`: the paper's randomized single-order win rate against m0
with its bootstrap interval, and the both-order one (a win only when it survives the swap) with its interval, the
strict rate, wins / losses / flips and dropped verdicts. :func:`model_rows` turns each run into one row per model;
:func:`aggregate_win_rates` averages rows that agree on the report's identity keys plus :data:`WIN_RATE_GROUP_BY`
(the model m_t, the judge, the Roleplayer, and digests of the training run's and the evaluation's settings without
their seeds) with the shared :func:`~clarifylab.evaluation.tables.aggregate_runs`. So only replicates (runs that
differ in nothing but seeds) share a row: its rates are means with ``± std`` over the runs, its interval bounds
the means of the runs' bounds, ``runs`` counts them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clarifylab.evaluation.tables import (
    GROUP_BY,
    aggregate_runs,
    render_section,
    split_eval_runs,
)

PROTOCOL = "star_gate_win_rate"
WIN_RATE_KEY = "by_model"
WIN_RATE_GROUP_BY = ("questioner", "judge_model", "simulator_model", "train_settings", "eval_settings")
"""Identity keys of a win-rate row beyond the report's own (``GROUP_BY``)."""
WIN_RATE_COLUMNS = ("label", "dataset", "split", "data", "model", "approach", "train_regularization", "questioner",
                    "judge_model", "runs", "single_n", "single_win_rate", "single_ci_low", "single_ci_high",
                    "both_win_rate", "both_ci_low", "both_ci_high", "both_strict_win_rate", "wins", "losses", "flips",
                    "single_dropped", "both_dropped")
WIN_RATE_HEADERS = {"train_regularization": "Regularization", "questioner": "m_t", "judge_model": "Judge",
                    "single_n": "Pairs", "single_win_rate": "Win (1 order)", "single_ci_low": "1-order CI low",
                    "single_ci_high": "1-order CI high", "both_win_rate": "Win (2 orders)",
                    "both_ci_low": "2-order CI low", "both_ci_high": "2-order CI high",
                    "both_strict_win_rate": "Strict", "wins": "Wins", "losses": "Losses",
                    "flips": "Flips", "single_dropped": "Dropped (1)", "both_dropped": "Dropped (2)"}
SUMMARY_ONLY = frozenset({WIN_RATE_KEY, "by_turns", "usage", "logprob_curve", "test_logprob_curve", "data_files",
                          "questioner_models", "overrides", "choices", "train_overrides"})
"""Keys of a run's summary that are not copied into its model rows (lists and nested objects)."""
RUN_LEVEL_RATES = frozenset({"win_rate", "win_rate_ci_low", "win_rate_ci_high", "win_rate_both",
                             "win_rate_both_ci_low", "win_rate_both_ci_high", "win_rate_both_strict", "flips",
                             "win_rate_model"})
"""The run-level copies of the last model's rates: each model row carries its own."""


def is_win_rate_run(summary: Mapping[str, Any]) -> bool:
    """Whether a ``metrics.json`` object is a STaR-GATE win-rate run (protocol and per-model rows)."""
    return summary.get("protocol") == PROTOCOL and isinstance(summary.get(WIN_RATE_KEY), list)


def model_rows(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (win-rate run, model m_t), in run order then t; other runs are skipped.

    A row is the run's summary without :data:`SUMMARY_ONLY` and :data:`RUN_LEVEL_RATES`, with ``questioner`` = the
    model's label (``m1``, ``m2``, ...) and that model's rates; ``run_dir`` is kept so the aggregated row lists its
    runs.
    """
    rows = []
    for summary in summaries:
        if not is_win_rate_run(summary):
            continue
        base = {k: v for k, v in summary.items() if k not in SUMMARY_ONLY and k not in RUN_LEVEL_RATES}
        for entry in summary[WIN_RATE_KEY]:
            rates = {k: v for k, v in entry.items() if k != "label"}
            rows.append({**base, "questioner": entry["label"], **rates})
    return rows


def aggregate_win_rates(summaries: Sequence[Mapping[str, Any]],
                        group_by: Sequence[str] = GROUP_BY) -> list[dict[str, Any]]:
    """:func:`model_rows` averaged over replicates: rows that agree on ``group_by`` and :data:`WIN_RATE_GROUP_BY`."""
    keys = list(group_by) + [k for k in WIN_RATE_GROUP_BY if k not in group_by]
    return aggregate_runs(model_rows(summaries), keys)


def win_rate_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`WIN_RATE_COLUMNS` without ``train_regularization`` when no row has it (runs from before it was
    recorded)."""
    return [c for c in WIN_RATE_COLUMNS
            if c != "train_regularization" or any(row.get(c) is not None for row in rows)]


def render_win_rates(rows: Sequence[Mapping[str, Any]], title: str = "STaR-GATE win rates vs m0",
                     console: Any | None = None) -> str:
    """Print the rich table of aggregated win-rate ``rows`` and return its Markdown (with a ``##`` heading)."""
    return render_section(rows, win_rate_columns(rows), title, WIN_RATE_HEADERS, console)


def split_win_rate_runs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The evaluation runs at or below ``paths`` (:func:`~clarifylab.evaluation.tables.find_eval_dirs`), split into
    the ``metrics.json`` files of the other runs (for the flat table) and the summaries of win-rate runs."""
    return split_eval_runs(paths, is_win_rate_run)
