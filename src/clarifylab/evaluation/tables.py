"""Result tables in the papers' layout: one row per distinct run configuration, seeds averaged.

Evaluation runs are found by their ``metrics.json`` (:func:`find_eval_dirs`, recursively, so a whole
Hydra multirun directory can be passed), grouped by :data:`GROUP_BY` — everything that distinguishes a
run except its seed: dataset, split, data file (name and content hash), model, approach, the training
run's trainer / ACT component ablation / dataset / pair source, conversations, simulator and classifier (and the LLM behind
each), turn limit and example sample size — and averaged over the runs of a group (the seeds); rendered as Markdown (files),
CSV and a rich table (console). Rates are shown as percentages with one decimal, as in ACT's tables,
with ``± std`` when a group has several runs and ``runs`` counting them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from clarifylab.errors import DataFormatError, DataNotFoundError

IDENTITY_COLUMNS = ("label", "dataset", "split", "data", "model", "approach", "act_ablation", "pairs",
                    "conversations")
PAPER_COLUMNS = ("label", "dataset", "model", "approach", "conversations", "heuristic", "n_trajectories", "accuracy",
                 "macro_f1", "clarify_precision", "clarify_recall", "turn_h", "trajectory_h", "post_clarify_h",
                 "simulator", "sim_degenerate_rate")
"""The comparison table: identity, then action level, then content level (ACT Tables 1-3), then the user
simulator and the share of its replies that were copies (``evaluator.summarize``)."""
REPORT_COLUMNS = ("label", "dataset", "split", "data", "model", "approach", "act_ablation", "pairs", "conversations",
                  "runs", "heuristic", "n_examples", "n_trajectories", "accuracy", "macro_f1", "clarify_precision",
                  "clarify_recall", "turn_h", "trajectory_h", "post_clarify_h", "simulator", "sim_degenerate_rate",
                  "sql_multiple_statements_turn", "sql_multiple_statements_trajectory")
GROUP_BY = ("dataset", "split", "data", "model", "approach", "trainer", "act_ablation", "train_dataset", "pairs",
            "pseudo_labels", "conversations", "simulator", "simulator_model", "classifier", "classifier_model",
            "max_turns", "interpretations", "max_examples")
"""A result row's identity: runs that agree on all of these (and differ only in seeds) are averaged. A key
missing from a ``metrics.json`` (older runs) counts as None. ``data`` is derived on reading
(:func:`data_label`)."""
PERCENT_COLUMNS = frozenset({"accuracy", "macro_f1", "clarify_precision", "clarify_recall", "clarify_f1", "turn_h",
                             "trajectory_h", "post_clarify_h", "trajectory_h_gold_clarify",
                             "trajectory_h_gold_answer", "clarify_rate", "turn_limit_rate",
                             "sim_degenerate_rate", "acc_or", "acc_cl", "acc_co", "targeted_rate"})
HEADERS = {"label": "Label", "dataset": "Dataset", "model": "Model", "approach": "Approach",
           "conversations": "Conversations", "runs": "Runs", "heuristic": "H", "n_trajectories": "Trajectories",
           "split": "Split", "data": "Data", "act_ablation": "ACT ablation", "pairs": "Pairs", "n_examples": "Examples",
           "simulator": "Simulator", "sim_degenerate_rate": "Sim. copies",
           "accuracy": "Accuracy", "macro_f1": "Macro F1", "clarify_precision": "Clarify P",
           "clarify_recall": "Clarify R", "turn_h": "Turn H", "trajectory_h": "Traj. H",
           "post_clarify_h": "Post-Clarify H", "sql_multiple_statements_turn": "SQL 2+ stmts (turn)",
           "sql_multiple_statements_trajectory": "SQL 2+ stmts (traj.)"}
MISSING = "–"
METRICS_FILE = "metrics.json"
JOINED_KEYS = frozenset({"seed", "train_seed"})
"""Numeric descriptors listed (``"0,1,2"``) rather than averaged when runs are grouped."""
OPTIONAL_COLUMNS = frozenset({"split", "data", "act_ablation", "pairs", "n_examples", "simulator",
                              "sim_degenerate_rate", "sql_multiple_statements_turn",
                              "sql_multiple_statements_trajectory"})
"""Report columns left out of a table in which no row has a value (e.g. no trained policy: no ACT ablation)."""
PATH_COLUMNS = frozenset({"pairs"})
"""Shown by their last two path components (the full path stays in the rows and the CSV)."""


def column_header(column: str, headers: Mapping[str, str] | None = None) -> str:
    """Display name of a column (``macro_f1`` -> ``Macro F1``; ``headers`` overrides :data:`HEADERS`);
    unknown columns keep their key."""
    return (headers or {}).get(column) or HEADERS.get(column, column)


def format_value(value: Any, column: str = "", digits: int = 3) -> str:
    """Cell text: rates (:data:`PERCENT_COLUMNS`) as percentages with one decimal, other floats with
    ``digits`` decimals, None/NaN as an en dash, paths (:data:`PATH_COLUMNS`) by their last two
    components, anything else via ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if column in PATH_COLUMNS and isinstance(value, str):
        return "/".join(Path(value).parts[-2:])
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) and column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def cell(row: Mapping[str, Any], column: str, digits: int = 3) -> str:
    """:func:`format_value` of ``row[column]``, with `` ± std`` when ``row`` has ``<column>_std`` (> 1 run)."""
    text = format_value(row.get(column), column, digits)
    std = row.get(f"{column}_std")
    if std is not None and text != MISSING:
        text += f" ± {format_value(std, column, digits)}"
    return text


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], digits: int = 3,
                   headers: Mapping[str, str] | None = None) -> str:
    """A Markdown table with one row per mapping (missing keys as an en dash)."""
    lines = ["| " + " | ".join(column_header(c, headers) for c in columns) + " |", "|" + "|".join(["---"] * len(columns)) + "|"]
    lines += ["| " + " | ".join(cell(row, c, digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None,
               digits: int = 3, headers: Mapping[str, str] | None = None) -> Any:
    """The same table as :func:`markdown_table`, as a ``rich.table.Table``."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column_header(column, headers), justify="left" if column in IDENTITY_COLUMNS else "right")
    for row in rows:
        table.add_row(*(cell(row, c, digits) for c in columns))
    return table


def csv_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text: one line per row, columns = the union of the rows' scalar keys (raw values, no rounding)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, (Mapping, list))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def wide_console() -> Any:
    """A rich console that does not squeeze tables to 80 columns when output is piped to a log."""
    return Console() if sys.stdout.isatty() else Console(width=200)


# --------------------------------------------------------------------------------------------- reading runs


def find_eval_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Every directory at or below ``paths`` that holds a ``metrics.json``, sorted, without duplicates.

    Raises:
        DataNotFoundError: a path does not exist, or holds no ``metrics.json`` anywhere below it.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise DataNotFoundError(f"{path} does not exist: pass evaluate.py output or multirun directories")
        if path.is_file():
            hits = [path.parent] if path.name == METRICS_FILE else []
        else:
            hits = sorted(p.parent for p in path.rglob(METRICS_FILE))
        if not hits:
            raise DataNotFoundError(f"no {METRICS_FILE} at or below {path}: pass directories written by evaluate.py")
        found += [h for h in hits if h not in found]
    return found


def data_label(summary: Mapping[str, Any]) -> str | None:
    """``<file name>@<first 12 hex of its sha256>`` of a run's ``data_file`` / ``data_sha256`` (the file name
    alone without a hash; None without a file): the data identity of a row, the same for one file's
    copies in two checkouts, different for two files or two versions of one file."""
    path, digest = summary.get("data_file"), summary.get("data_sha256")
    if not path:
        return None
    return f"{Path(str(path)).name}@{str(digest)[:12]}" if digest else Path(str(path)).name


def read_eval_summaries(dirs: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The ``metrics.json`` object of each directory, in order; a summary without a ``label`` is
    labelled by its directory name; ``data`` is :func:`data_label`; ``run_dir`` records where it came from."""
    rows = []
    for directory in map(Path, dirs):
        path = directory / METRICS_FILE
        if not path.is_file():
            raise DataNotFoundError(f"{path} not found: pass directories written by evaluate.py")
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{path}: not valid JSON ({error}); re-run the evaluation that wrote it") from None
        if not isinstance(summary, dict):
            raise DataFormatError(f"{path}: expected a JSON object of metrics, got {type(summary).__name__}")
        rows.append({"label": directory.name, **summary, "data": data_label(summary), "run_dir": str(directory)})
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate_runs(rows: Sequence[Mapping[str, Any]], group_by: Sequence[str] = GROUP_BY) -> list[dict[str, Any]]:
    """One row per distinct ``group_by`` values, in order of first appearance.

    Numeric metrics are averaged over the group's runs (``None`` values skipped; all ``None`` -> None)
    and, when more than one run has a value, their sample standard deviation is added as ``<key>_std``;
    an integer all runs agree on (a count such as ``n_trajectories``) is kept as it is.
    Text fields and :data:`JOINED_KEYS` (``seed``) keep their value when the runs agree, else the
    distinct values joined by ``,``.
    ``runs`` counts the runs and ``run_dirs`` lists them.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = tuple(json.dumps(row.get(column), sort_keys=True) for column in group_by)
        groups.setdefault(key, []).append(row)
    aggregated = []
    for members in groups.values():
        merged: dict[str, Any] = {"runs": len(members), "run_dirs": [m.get("run_dir") for m in members]}
        keys = [k for m in members for k in m if not isinstance(m[k], (Mapping, list)) and k != "run_dir"]
        for key in dict.fromkeys(keys):
            values = [m.get(key) for m in members]
            present = [v for v in values if v is not None]
            if key in group_by:
                merged[key] = values[0]
            elif present and all(_is_number(v) for v in present) and key not in JOINED_KEYS:
                if all(isinstance(v, int) for v in present) and len(set(present)) == 1:
                    merged[key] = present[0]  # a count all runs agree on (e.g. n_trajectories) stays exact
                    continue
                merged[key] = statistics.fmean(present)
                if len(present) > 1:
                    merged[f"{key}_std"] = statistics.stdev(present)
            elif present:
                distinct = list(dict.fromkeys(str(v) for v in present))
                merged[key] = present[0] if len(distinct) == 1 else ",".join(distinct)
            else:
                merged[key] = None
        aggregated.append(merged)
    return aggregated


def shown_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """``columns`` without the :data:`OPTIONAL_COLUMNS` that no row has a value for."""
    return [c for c in columns if c not in OPTIONAL_COLUMNS or any(row.get(c) is not None for row in rows)]


def render_section(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str,
                   headers: Mapping[str, str] | None = None, console: Any | None = None) -> str:
    """Print ``rows`` as a rich table and return the same table as Markdown under a ``## title`` heading (the
    per-method tables that ``experiments/report.py`` adds below the flat one)."""
    (console or wide_console()).print(rich_table(rows, columns, title, headers=headers))
    return f"## {title}\n\n{markdown_table(rows, columns, headers=headers)}"


def split_eval_runs(paths: Sequence[str | os.PathLike[str]], selected: Any) -> tuple[list[Path], list[dict[str, Any]]]:
    """The evaluation runs at or below ``paths`` (:func:`find_eval_dirs`) split by ``selected(summary) -> bool``:
    ``(metrics.json paths of the other runs, summaries of the selected runs)``."""
    dirs = find_eval_dirs(paths)
    summaries = read_eval_summaries(dirs)
    others = [Path(directory) / METRICS_FILE for directory, s in zip(dirs, summaries) if not selected(s)]
    return others, [s for s in summaries if selected(s)]


def build_report(paths: Sequence[str | os.PathLike[str]], group_by: Sequence[str] = GROUP_BY,
                 columns: Sequence[str] = REPORT_COLUMNS, title: str | None = None,
                 console: Any | None = None) -> tuple[str, str, list[dict[str, Any]]]:
    """Find runs under ``paths``, aggregate them and print the rich table of ``columns`` (to ``console``,
    default a new console; :func:`shown_columns`); returns ``(markdown, csv, aggregated rows)``."""
    rows = aggregate_runs(read_eval_summaries(find_eval_dirs(paths)), group_by)
    columns = shown_columns(rows, columns)
    (console or wide_console()).print(rich_table(rows, columns, title))
    markdown = markdown_table(rows, columns)
    if title:
        markdown = f"# {title}\n\n{markdown}"
    return markdown, csv_table(rows), rows
