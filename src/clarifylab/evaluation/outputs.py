"""Files of one evaluation run: ``metrics.json``, ``metrics.csv``, ``results.md``, ``trajectories.jsonl``.

``metrics.json`` is one JSON object: the run's identity (``label``, ``model``, ``approach``,
``conversations``, ``dataset``, ``split``, ...), the summary metrics of
:func:`~clarifylab.evaluation.evaluator.summarize` at the top level, and nested ``usage`` (tokens,
calls and cache hits per role, :class:`~clarifylab.backends.accounting.UsageMeter`). ``metrics.csv``
is the same object flattened into one row (nested keys joined by ``/``). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clarifylab.evaluation.evaluator import EvalResult, TrajectoryRecord
from clarifylab.evaluation.tables import PAPER_COLUMNS, format_value, markdown_table
from clarifylab.io import atomic_open, write_json, write_text

METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
RESULTS_MD = "results.md"
TRAJECTORIES_JSONL = "trajectories.jsonl"


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings flattened with ``/``: ``{"usage": {"policy": {"calls": 2}}}`` ->
    ``{"usage/policy/calls": 2}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def csv_row(record: Mapping[str, Any]) -> str:
    """Header + one row of the flattened ``record`` (lists as JSON)."""
    flat = {k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in flatten(record).items()}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat), lineterminator="\n")
    writer.writeheader()
    writer.writerow(flat)
    return buffer.getvalue()


def transcript_markdown(record: TrajectoryRecord, max_chars: int = 300) -> str:
    """One trajectory as a short Markdown block (gold action, turns with their actions, scores; a simulated
    user turn that copied something is tagged ``[degenerate: copy of the question|history|goal|instructions]``)."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= max_chars else text[:max_chars] + " …"

    lines = [f"**{record.id}** (interpretation {record.interpretation}, gold {record.gold_action}; "
             f"turn H {record.turn_h:.3f}, trajectory H {record.trajectory_h:.3f})", ""]
    actions, copies = iter(record.actions), iter(record.degenerate_replies)
    for message in record.turns:
        if message["role"] == "assistant":
            tag = f" [{next(actions, '?')}]"
        else:
            copied = next(copies, None)
            tag = f" [degenerate: copy of the {copied}]" if copied else ""
        lines.append(f"- {message['role']}{tag}: {cut(message['content'])}")
    lines.append(f"- goal: {cut(record.goal)}")
    return "\n".join(lines) + "\n"


def scorer_outcomes_line(metrics: Mapping[str, Any], prefix: str) -> str:
    """``"turn level: match 3, multiple_statements 1; trajectory level: ..."`` from the ``<prefix>_<code>_<level>``
    counts of :func:`~clarifylab.evaluation.evaluator.outcome_columns` (codes seen at least once; "" without any)."""
    levels = []
    for level in ("turn", "trajectory"):
        suffix = f"_{level}"
        seen = [f"{key[len(prefix) + 1:-len(suffix)]} {value}" for key, value in metrics.items()
                if key.startswith(f"{prefix}_") and key.endswith(suffix) and isinstance(value, int) and value]
        if seen:
            levels.append(f"{level} level: " + ", ".join(seen))
    return "; ".join(levels)


def results_markdown(metrics: Mapping[str, Any], records: Sequence[TrajectoryRecord], title: str,
                     n_samples: int = 5) -> str:
    """``results.md``: the paper's columns, every other metric, usage per role and sample trajectories."""
    parts = [f"# {title}\n"]
    identity = [f"{key}: {metrics[key]}" for key in ("model", "approach", "conversations", "dataset", "split",
                                                      "heuristic") if metrics.get(key) is not None]
    if identity:
        parts.append("; ".join(identity) + "\n")
    parts.append(markdown_table([dict(metrics)], PAPER_COLUMNS))
    if metrics.get("n_sim_replies"):
        parts.append(f"\nUser simulator ({metrics.get('simulator', '?')}): {metrics['n_sim_degenerate']} of "
                     f"{metrics['n_sim_replies']} replies were copies, not answers (question "
                     f"{metrics['sim_copies_question']}, earlier turn {metrics['sim_copies_history']}, goal text "
                     f"{metrics['sim_copies_goal']}, own prompt {metrics['sim_copies_instructions']}; "
                     f"{metrics['n_trajectories_sim_degenerate']} trajectories affected)."
                     "\n")
    sql = scorer_outcomes_line(metrics, "sql")
    if sql:
        parts.append(f"\nSQL scorer outcomes (execution match; only `match` scores 1): {sql}.\n")
    scalar = {k: v for k, v in metrics.items() if not isinstance(v, (Mapping, list))}
    parts.append("\n## All metrics\n\n" + markdown_table(
        [{"metric": k, "value": format_value(v, k)} for k, v in scalar.items()], ["metric", "value"]))
    usage = metrics.get("usage")
    if isinstance(usage, Mapping) and usage:
        counters = list(next(iter(usage.values())))
        rows = [{"role": role, **values} for role, values in usage.items()]
        parts.append("\n## LLM usage\n\n" + markdown_table(rows, ["role", *counters]))
    if records and n_samples > 0:
        parts.append("\n## Sample trajectories\n\n" + "\n".join(transcript_markdown(r) for r in records[:n_samples]))
    return "\n".join(parts)


def write_eval_outputs(result: EvalResult, out_dir: str | os.PathLike[str], title: str,
                       identity: Mapping[str, Any] | None = None, usage: Mapping[str, Any] | None = None,
                       extra: Mapping[str, Any] | None = None, n_samples: int = 5) -> dict[str, Any]:
    """Write the four files into ``out_dir`` and return the ``metrics.json`` object.

    Args:
        result: the evaluation.
        title: heading of ``results.md``.
        identity: ``label``, ``model``, ``approach``, ``conversations`` and other run descriptors (first
            in the JSON; ``label`` defaults to ``title``).
        usage: ``UsageMeter.summary()`` (nested under ``usage``).
        extra: further JSON-ready fields (e.g. the simulator/classifier names), after the metrics.
    """
    out = Path(out_dir)
    metrics: dict[str, Any] = {"label": title, **(identity or {}), **result.summary, **(extra or {})}
    if usage is not None:
        metrics["usage"] = dict(usage)
    write_json(out / METRICS_JSON, metrics)
    write_text(out / METRICS_CSV, csv_row(metrics))
    with atomic_open(out / TRAJECTORIES_JSONL) as handle:
        for record in result.records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    write_text(out / RESULTS_MD, results_markdown(metrics, result.records, title, n_samples))
    return metrics


