"""The teacher-student benchmark in ``experiments/report.py``: one row per run configuration and ablation strategy.

A ``protocol=ts_benchmark`` run's ``metrics.json`` (:mod:`~clarifylab.methods.ts.benchmark`) holds the overall
metrics at the top level and one entry per strategy (``column``, ``row``, ``value``, ``question`` ... and ``all``)
under :data:`BENCHMARK_KEY`. :func:`strategy_rows` turns each run into one row per strategy (the run's identity
plus that strategy's AccOr / AccCl / AccCo / clarification P / R / targeted rate / pairs);
:func:`aggregate_benchmark` averages rows that agree on the report's identity keys plus the judge, the answer match and the strategy
(replicates: runs that differ only in their seeds) with the shared :func:`~clarifylab.evaluation.tables.aggregate_runs`,
so a different model, data file, split, trainer, sample size, judge or answer match is a different row.
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
    shown_columns,
    split_eval_runs,
)
from clarifylab.methods.ts.benchmark import HEADERS as METRIC_HEADERS

BENCHMARK_KEY = "by_strategy"
BENCHMARK_GROUP_BY = ("judge", "judge_model", "match", "strategy")
"""Identity keys of a benchmark row beyond the report's own (``GROUP_BY``)."""
BENCHMARK_COLUMNS = ("label", "dataset", "split", "data", "model", "approach", "act_ablation", "pairs", "judge",
                     "judge_model", "match", "strategy", "runs", "n_pairs", "acc_or", "acc_cl", "acc_co", "clarify_precision",
                     "clarify_recall", "targeted_rate")
BENCHMARK_HEADERS = {**METRIC_HEADERS, "judge": "Judge", "judge_model": "Judge model", "match": "Match"}
SUMMARY_ONLY = frozenset({BENCHMARK_KEY, "usage"})
"""Keys of a run's summary that are not copied into its strategy rows."""


def is_benchmark_run(summary: Mapping[str, Any]) -> bool:
    """Whether a ``metrics.json`` object is a teacher-student benchmark run (it has per-strategy metrics)."""
    return isinstance(summary.get(BENCHMARK_KEY), Mapping)


def strategy_rows(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (benchmark run, strategy), in run order then the run's strategy order; other runs are skipped.

    A row is the run's summary (without :data:`SUMMARY_ONLY` and the run-level metric values) with ``strategy``
    and that strategy's metrics; ``run_dir`` is kept so the aggregated row lists its runs.
    """
    rows = []
    for summary in summaries:
        if not is_benchmark_run(summary):
            continue
        strategies = summary[BENCHMARK_KEY]
        metric_keys = {key for values in strategies.values() for key in values}
        base = {k: v for k, v in summary.items() if k not in SUMMARY_ONLY and k not in metric_keys}
        rows += [{**base, "strategy": name, **values} for name, values in strategies.items()]
    return rows


def aggregate_benchmark(summaries: Sequence[Mapping[str, Any]],
                        group_by: Sequence[str] = GROUP_BY) -> list[dict[str, Any]]:
    """:func:`strategy_rows` averaged over replicates: rows that agree on ``group_by`` and
    :data:`BENCHMARK_GROUP_BY` (metrics as mean with ``<key>_std``, ``runs`` counting them)."""
    keys = list(group_by) + [k for k in BENCHMARK_GROUP_BY if k not in group_by]
    return aggregate_runs(strategy_rows(summaries), keys)


def benchmark_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`BENCHMARK_COLUMNS` without optional ones no row has a value for (``judge_model`` with the rule judge)."""
    columns = shown_columns(rows, BENCHMARK_COLUMNS)
    return [c for c in columns if c != "judge_model" or any(row.get(c) is not None for row in rows)]


def render_benchmark(rows: Sequence[Mapping[str, Any]], title: str = "Teacher-student benchmark",
                     console: Any | None = None) -> str:
    """Print the rich table of aggregated benchmark ``rows`` and return its Markdown (with a ``##`` heading)."""
    return render_section(rows, benchmark_columns(rows), title, BENCHMARK_HEADERS, console)


def split_benchmark_runs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The evaluation runs at or below ``paths`` (:func:`~clarifylab.evaluation.tables.find_eval_dirs`), split into
    the ``metrics.json`` files of the other runs (for the flat table) and the summaries of benchmark runs."""
    return split_eval_runs(paths, is_benchmark_run)


def yield_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy of a ``task=ts_curriculum`` build's ``manifest.json``: the items alive after each stage
    (``counts.yield``, :data:`~clarifylab.methods.ts.curriculum.STAGES`) and the drops by reason as one text cell."""
    from clarifylab.methods.ts.curriculum import STAGES

    counts = manifest["counts"]
    return [{"source": manifest["source"], "strategy": strategy, **{s: stages.get(s) for s in STAGES},
             "dropped": ", ".join(f"{k} {v}" for k, v in counts["dropped"][strategy].items())}
            for strategy, stages in counts["yield"].items()]


def yield_table(manifest: Mapping[str, Any]) -> str:
    """:func:`yield_rows` as a Markdown table."""
    from clarifylab.evaluation.tables import markdown_table
    from clarifylab.methods.ts.curriculum import STAGES

    return markdown_table(yield_rows(manifest), ("source", "strategy", *STAGES, "dropped"))
