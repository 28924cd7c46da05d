"""Aggregate evaluation runs into the papers' table: one row per run configuration, seeds averaged.

    python experiments/report.py multirun/evaluate/2026-01-01_12-00-00 --out results.md
    python experiments/report.py outputs/demo/eval_base outputs/demo/eval_sft --out outputs/demo/results.md
    python experiments/report.py multirun/evaluate/<date> --layout act --out tables.md   # ACT Tables 1-3

Each path is an evaluate.py output directory or any folder above some (found recursively by their
metrics.json). Runs that differ only in their seeds are averaged, with ± std and a `runs` count; runs that
differ in anything else recorded in metrics.json (split, data file or its hash, trainer, act_ablation, pairs,
conversations, simulator, ...: clarifylab.evaluation.tables.GROUP_BY) are separate rows. Teacher-student benchmark
runs (protocol=ts_benchmark) get a second table with one row per run configuration and ablation strategy: AccOr,
AccCl, AccCo, clarification P / R (clarifylab.methods.ts.report_table; the judge is part of the identity).
STaR-GATE win-rate runs (protocol=star_gate_win_rate) get a table with one row per run configuration and model m_t:
win rate against m0 in the randomized single order and in both orders, each with its bootstrap interval, flips
(clarifylab.methods.star_gate.report_table; judge, Roleplayer and the training / evaluation settings are identity).
Prints a rich table and writes Markdown (--out) and CSV (--csv, default: --out with .csv).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's code (README "Paths")

from clarifylab.errors import ClarifyLabError  # noqa: E402
from clarifylab.methods.act.paper_tables import render_act_tables  # noqa: E402
from clarifylab.methods.ts.report_table import aggregate_benchmark, render_benchmark, split_benchmark_runs  # noqa: E402
from clarifylab.methods.star_gate.report_table import (  # noqa: E402
    aggregate_win_rates,
    render_win_rates,
    split_win_rate_runs,
)
from clarifylab.evaluation.tables import (  # noqa: E402
    GROUP_BY,
    REPORT_COLUMNS,
    aggregate_runs,
    build_report,
    csv_table,
    find_eval_dirs,
    read_eval_summaries,
)
from clarifylab.io import write_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="evaluate.py output directories or folders above them")
    parser.add_argument("--out", help="write the table as Markdown to this file")
    parser.add_argument("--csv", help="write the aggregated rows as CSV (default: --out with a .csv suffix)")
    parser.add_argument("--title", default="ClarifyLab results")
    parser.add_argument("--group-by", default=",".join(GROUP_BY), help="comma-separated identity keys")
    parser.add_argument("--columns", default=",".join(REPORT_COLUMNS), help="comma-separated columns to show")
    parser.add_argument("--layout", choices=("flat", "act"), default="flat",
                        help="flat: one table of every run; act: ACT's Tables 1-3 (PACIFIC, Abg-CoQA, AmbigSQL)")
    args = parser.parse_args(argv)
    try:
        if args.layout == "act":
            rows = aggregate_runs(read_eval_summaries(find_eval_dirs(args.paths)), args.group_by.split(","))
            markdown, csv_text = f"# {args.title}\n\n{render_act_tables(rows)}", csv_table(rows)
        else:  # teacher-student benchmark runs get their own table, one row per ablation strategy
            others, benchmark = split_benchmark_runs(args.paths)
            others, win_rate_runs = split_win_rate_runs(others) if others else (others, [])
            markdown, csv_text, rows = build_report(others, group_by=args.group_by.split(","),
                                                    columns=args.columns.split(","),
                                                    title=args.title) if others else (f"# {args.title}\n", "", [])
            if benchmark:
                benchmark_rows = aggregate_benchmark(benchmark, args.group_by.split(","))
                markdown += "\n" + render_benchmark(benchmark_rows)
                rows = rows + benchmark_rows
                csv_text = csv_table(rows)
            if win_rate_runs:  # STaR-GATE win rates: one row per run configuration and model m_t
                win_rate_rows = aggregate_win_rates(win_rate_runs, args.group_by.split(","))
                markdown += "\n" + render_win_rates(win_rate_rows)
                rows = rows + win_rate_rows
                csv_text = csv_table(rows)
    except ClarifyLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    csv_path = args.csv or (str(Path(args.out).with_suffix(".csv")) if args.out else None)
    if args.out:
        write_text(args.out, markdown + "\n")
    if csv_path:
        write_text(csv_path, csv_text)
    written = [p for p in (args.out, csv_path) if p]
    print(f"report: {len(rows)} rows" + (f"; wrote {', '.join(written)}" if written else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
