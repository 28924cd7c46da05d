"""Figures a researcher looks at: training curves per run and result columns with their seed spread (PNG).

:func:`plot_demo` draws one figure with three panels (matplotlib, Agg backend, no display needed):

1. SFT ``train/loss`` per run against the optimizer step (``<run>/sft/csv/metrics.csv``);
2. ACT ``train/loss`` (solid) and ``train/reward_margin`` (dashed, right axis) per run (``<run>/act/csv/metrics.csv``);
3. the result columns (``BAR_COLUMNS``) as grouped bars base / SFT / ACT: bar = mean over seeds, error bar = sd,
   dots = the single runs (from the per-run ``metrics.json`` next to the aggregated ``results.csv``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

BAR_COLUMNS = ("accuracy", "macro_f1", "clarify_precision", "clarify_recall", "turn_h", "trajectory_h",
               "post_clarify_h")
BAR_LABELS = ("Accuracy", "Macro F1", "Clarify P", "Clarify R", "Turn H", "Traj. H", "Post-Clarify H")
POLICIES = ("base", "sft", "act")


def read_curve(metrics_csv: str | Path, column: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of ``column`` in a Lightning CSVLogger ``metrics.csv``; rows without a value are skipped.

    Missing file or column -> ``([], [])``.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        return [], []
    steps, values = [], []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            value = row.get(column)
            if value not in (None, ""):
                steps.append(float(row.get("step") or len(steps)))
                values.append(float(value))
    return steps, values


def run_scores(runs: Mapping[str, Path], label: str, column: str) -> list[float]:
    """``column`` of ``<run>/eval_<label>/metrics.json`` for every run that has it (None/NaN left out)."""
    scores = []
    for run in runs.values():
        path = Path(run) / f"eval_{label}" / "metrics.json"
        if path.is_file():
            value = json.loads(path.read_text()).get(column)
            if isinstance(value, (int, float)) and not math.isnan(value):
                scores.append(float(value))
    return scores


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); ``(nan, nan)`` for none."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def plot_demo(runs: Mapping[str, str | Path], results_csv: str | Path | None, out_png: str | Path) -> Path:
    """Write the three-panel figure (module docstring) for ``runs`` (name -> demo run folder) to ``out_png``.

    ``results_csv`` is accepted for provenance (the table the bars summarise) and is not read: the bars are
    recomputed from the per-run ``metrics.json`` so that the dots show the single seeds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {name: Path(run) for name, run in runs.items()}
    fig, (ax_sft, ax_act, ax_bar) = plt.subplots(1, 3, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1, 1, 2]})
    ax_margin = ax_act.twinx()
    for i, (name, run) in enumerate(runs.items()):
        color = f"C{i}"
        ax_sft.plot(*read_curve(run / "sft" / "csv" / "metrics.csv", "train/loss"), color=color, label=name)
        ax_act.plot(*read_curve(run / "act" / "csv" / "metrics.csv", "train/loss"), color=color, label=f"{name} loss")
        ax_margin.plot(*read_curve(run / "act" / "csv" / "metrics.csv", "train/reward_margin"), color=color,
                       linestyle="--", label=f"{name} margin")
    ax_sft.set(title="SFT: train loss", xlabel="step", ylabel="loss")
    ax_act.set(title="ACT: DPO loss (solid), reward margin (dashed)", xlabel="step", ylabel="loss")
    ax_margin.set_ylabel("reward margin")
    ax_sft.legend(fontsize=8)
    width = 0.27
    for j, label in enumerate(POLICIES):
        means, sds = zip(*(mean_sd(run_scores(runs, label, column)) for column in BAR_COLUMNS))
        xs = [k + (j - 1) * width for k in range(len(BAR_COLUMNS))]
        ax_bar.bar(xs, [100 * m for m in means], width, yerr=[100 * s for s in sds], capsize=3, color=f"C{j + 3}",
                   alpha=0.8, label=label)
        for x, column in zip(xs, BAR_COLUMNS):
            dots = [100 * v for v in run_scores(runs, label, column)]
            ax_bar.scatter([x] * len(dots), dots, color="black", s=8, zorder=3)
    ax_bar.set_xticks(range(len(BAR_COLUMNS)), BAR_LABELS, fontsize=8)
    ax_bar.set(title=f"base / SFT / ACT: mean ± sd over {len(runs)} run(s), dots = runs", ylabel="%")
    ax_bar.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png
