"""ACT's Tables 1-3 (Chen et al., ICLR 2025) in the paper's layout, from aggregated evaluation rows.

One table per dataset: Base Model | Approach | Conversations | the action-level then content-level metrics the
paper reports for it (the trajectory-level H is "Traj. F1" on PACIFIC, "Traj. Similarity" on Abg-CoQA and
"Execution Match" on AmbigSQL). Rows are ordered as in the paper: prompting baselines first, then per data
setting (conversations ascending) SFT, IRPO, ACT, then anything else (ablations, DPO-Dist) by name. An
ablation or a pseudo-labelled run of a method is its own row, named ``act (no_simulation)`` /
``act (pseudo-labels)`` (:func:`approach_name`); a ``Split`` / ``Data`` column is added to a table whose rows
were evaluated on different splits or data files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clarifylab.evaluation.tables import markdown_table, rich_table, wide_console


@dataclass(frozen=True)
class PaperTable:
    """The layout of one of the paper's tables."""

    number: int
    dataset: str
    caption: str
    metrics: tuple[str, ...]
    headers: Mapping[str, str]


IDENTITY = ("model", "approach_name", "conversations")
IDENTITY_HEADERS = {"model": "Base Model", "approach_name": "Approach", "conversations": "Conversations",
                    "split": "Split", "data": "Data"}
VARYING = ("split", "data")
"""Identity columns shown only in a table whose rows differ in them."""
ACT_TABLES: tuple[PaperTable, ...] = (
    PaperTable(1, "pacific", "PACIFIC", ("macro_f1", "turn_h", "trajectory_h", "post_clarify_h"),
               {"macro_f1": "Macro F1", "turn_h": "Turn F1", "trajectory_h": "Traj. F1",
                "post_clarify_h": "Post-Clarify F1"}),
    PaperTable(2, "abg_coqa", "Abg-CoQA", ("macro_f1", "turn_h", "trajectory_h"),
               {"macro_f1": "Macro F1", "turn_h": "Turn Similarity", "trajectory_h": "Traj. Similarity"}),
    PaperTable(3, "ambigsql", "AmbigSQL", ("accuracy", "macro_f1", "trajectory_h", "post_clarify_h"),
               {"accuracy": "Accuracy", "macro_f1": "Macro F1", "trajectory_h": "Execution Match",
                "post_clarify_h": "PC Execution Match"}),
)
APPROACH_ORDER = ("sft", "irpo", "act")
PROMPTING = ("base", "standard", "cot", "proactive")


def _conversations(row: Mapping[str, Any]) -> float:
    value = row.get("conversations")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")  # the whole pool / unknown: after the data settings


def approach_name(row: Mapping[str, Any]) -> str:
    """The row's approach, with its ablation (other than ``none``) and ``pseudo-labels`` in parentheses:
    ``act``, ``act (no_simulation)``, ``act (pseudo-labels)``."""
    approach = str(row.get("approach") or "")
    variants = [str(row["act_ablation"])] if row.get("act_ablation") not in (None, "none") else []
    variants += ["pseudo-labels"] if row.get("pseudo_labels") is True else []
    return f"{approach} ({', '.join(variants)})" if variants else approach


def row_order(row: Mapping[str, Any]) -> tuple:
    """Sort key: prompting baselines, then (conversations, SFT < IRPO < ACT < others — ablations and
    pseudo-label runs included — by name), then model, split and data."""
    approach, name = str(row.get("approach") or ""), approach_name(row)
    after = (str(row.get("model")), str(row.get("split")), str(row.get("data")))
    if approach in PROMPTING:
        return (0, PROMPTING.index(approach), 0.0, "", *after)
    rank = APPROACH_ORDER.index(name) if name in APPROACH_ORDER else len(APPROACH_ORDER)
    return (1, 0, _conversations(row), f"{rank}{name}", *after)


def act_paper_tables(rows: Sequence[Mapping[str, Any]]) -> list[tuple[PaperTable, list[Mapping[str, Any]]]]:
    """``(layout, ordered rows)`` for every ACT table whose dataset has rows; datasets without one are skipped."""
    out = []
    for table in ACT_TABLES:
        selected = sorted(({**r, "approach_name": approach_name(r)} for r in rows if r.get("dataset") == table.dataset),
                          key=row_order)
        if selected:
            out.append((table, selected))
    return out


def render_act_tables(rows: Sequence[Mapping[str, Any]], console: Any | None = None) -> str:
    """Print the rich tables and return them as Markdown (``## Table N: caption`` + table per dataset)."""
    console = console or wide_console()
    parts = []
    for table, selected in act_paper_tables(rows):
        varying = tuple(c for c in VARYING if len({str(r.get(c)) for r in selected}) > 1)
        columns = IDENTITY + varying + table.metrics
        headers = {**IDENTITY_HEADERS, **table.headers}
        title = f"Table {table.number}: {table.caption}"
        console.print(rich_table(selected, columns, title, headers=headers))
        parts.append(f"## {title}\n\n{markdown_table(selected, columns, headers=headers)}")
    return "\n".join(parts)
