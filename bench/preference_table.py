"""Summaries and the markdown table of the preference-step bench (pure functions over the sides' JSON results).

Per side (all its repeats pooled), with step 1 of every run dropped as warm-up (its times are reported apart):

    s/step          median [min-max] over the timed steps
    unique tok/s    sum of the timed steps' unique tokens / sum of their seconds
    peak RSS        the largest peak RSS of the side's processes (GiB = KiB / 2^20)
    x floor         median s/step / the floor's;  peak RSS / the floor's
    project vs TRL  speed = TRL median / project median (> 1: the project is faster); RSS = project / TRL
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

KIB_PER_GIB = 2 ** 20
WARMUP_STEPS = 1


def side_summary(runs: Sequence[Mapping[str, Any]], step_tokens: Sequence[int],
                 warmup: int = WARMUP_STEPS) -> dict[str, Any]:
    """One side's numbers from its runs (each ``{"step_seconds": [...], "losses": [...], "peak_rss_kib": int}``)
    and the unique tokens of each step (same schedule on every run).

    Raises:
        ValueError: a run has no step after the warm-up, or its step count differs from ``step_tokens``.
    """
    timed: list[float] = []
    tokens = 0
    for run in runs:
        seconds = list(run["step_seconds"])
        if len(seconds) != len(step_tokens):
            raise ValueError(f"a run has {len(seconds)} steps, the schedule {len(step_tokens)}")
        if len(seconds) <= warmup:
            raise ValueError(f"{len(seconds)} step(s) leave nothing to time after {warmup} warm-up step(s)")
        timed += seconds[warmup:]
        tokens += sum(step_tokens[warmup:])
    return {
        "median_s": statistics.median(timed), "min_s": min(timed), "max_s": max(timed), "timed_steps": len(timed),
        "tokens_per_s": tokens / sum(timed),
        "peak_rss_gib": max(run["peak_rss_kib"] for run in runs) / KIB_PER_GIB,
        "warmup_s": [run["step_seconds"][0] for run in runs],
        "step1_losses": [run["losses"][0] for run in runs],
        "losses": [list(run["losses"]) for run in runs],
    }


def add_ratios(summaries: dict[str, dict[str, Any]], floor: str = "floor") -> dict[str, dict[str, Any]]:
    """Each summary with ``x_floor_time`` and ``x_floor_rss`` (NaN without a floor side) and ``max_loss_gap``: the
    largest ``|loss - floor loss|`` over steps and repeats (the sides see the same batches, so their losses should
    agree up to float rounding)."""
    base = summaries.get(floor)
    out = {}
    for name, summary in summaries.items():
        extra = {"x_floor_time": math.nan, "x_floor_rss": math.nan, "max_loss_gap": math.nan}
        if base is not None:
            extra["x_floor_time"] = summary["median_s"] / base["median_s"]
            extra["x_floor_rss"] = summary["peak_rss_gib"] / base["peak_rss_gib"]
            gaps = [abs(a - b) for mine, theirs in zip(summary["losses"], base["losses"]) for a, b in zip(mine, theirs)]
            extra["max_loss_gap"] = max(gaps) if gaps else math.nan
        out[name] = {**summary, **extra}
    return out


def versus(summaries: Mapping[str, Mapping[str, Any]], mine: str, theirs: str) -> dict[str, float]:
    """``{"speed": theirs' median / mine, "rss": mine's peak RSS / theirs}``: speed > 1 means ``mine`` is faster,
    rss < 1 means it needs less memory."""
    a, b = summaries[mine], summaries[theirs]
    return {"speed": b["median_s"] / a["median_s"], "rss": a["peak_rss_gib"] / b["peak_rss_gib"]}


def _ratio(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}×"


def format_table(summaries: Mapping[str, Mapping[str, Any]], descriptions: Mapping[str, str],
                 steps: int, repeats: int) -> str:
    """The markdown table (one row per side, in the mapping's order), the project-vs-TRL line(s), the warm-up
    times and the step-1 losses."""
    lines = [f"| side | s/step median [min–max] (steps 2–{steps} × {repeats} runs) | unique tokens/s | peak RSS "
             "| × floor (time) | × floor (RSS) |", "|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        lines.append(f"| {descriptions.get(name, name)} | {s['median_s']:.2f} [{s['min_s']:.2f}–{s['max_s']:.2f}] "
                     f"| {s['tokens_per_s']:.1f} | {s['peak_rss_gib']:.2f} GiB | {_ratio(s['x_floor_time'])} "
                     f"| {_ratio(s['x_floor_rss'])} |")
    lines.append("")
    for name in summaries:
        if name.startswith("project") and "trl" in summaries:
            ratio = versus(summaries, name, "trl")
            lines.append(f"{name} vs TRL: speed {ratio['speed']:.2f}×, RSS {ratio['rss']:.2f}× "
                         "(speed > 1: faster than TRL; RSS < 1: less memory)")
    lines.append("step 1 (warm-up, not in the table), s: " + "; ".join(
        f"{name} " + ", ".join(f"{value:.2f}" for value in s["warmup_s"]) for name, s in summaries.items()))
    lines.append("step-1 loss (ln 2 = 0.693147): " + "; ".join(
        f"{name} " + ", ".join(f"{value:.6f}" for value in s["step1_losses"]) for name, s in summaries.items()))
    if any(not math.isnan(s["max_loss_gap"]) for s in summaries.values()):
        lines.append("max |loss − floor loss| over all steps: " + "; ".join(
            f"{name} {s['max_loss_gap']:.1e}" for name, s in summaries.items() if not math.isnan(s["max_loss_gap"])))
    return "\n".join(lines) + "\n"
