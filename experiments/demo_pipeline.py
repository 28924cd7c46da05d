"""The main job end to end: base -> SFT -> ACT (Alg. 1 pairs + Alg. 2) -> evaluation, for one or more seeds.

    python experiments/demo_pipeline.py --out outputs/demo                          # make demo (seed 0)
    python experiments/demo_pipeline.py --out outputs/demo_seeds --seeds 0 1 2      # the 3-seed table + plot

Every stage is one entry-point command (printed before it runs) on dataset=synthetic_lookup (conf/experiment/demo*.yaml).
Resumable: a stage whose output exists is skipped (delete its folder to redo it). With one seed the run lives in
``--out``; with several, in ``--out/seed<k>``. At the end it writes ``results.md``/``.csv`` (experiments/report.py: seeds
averaged, ``runs`` = how many), ``branches.json`` (ACT Alg. 2 branch counts per seed), ``stage_times_by_seed.json`` and
``curves.png`` (evaluation/plots.py) into ``--out`` and prints the closing note: stage times, the table, the branch
counts and the base model's accuracy on the fully specified questions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's code (README "Paths")

from clarifylab.io import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Alg. 1 pairs for the demo: the first 32 training examples, 2 in-context demonstrations per prompt to M.
PAIRS = ["task=act_pairs", "dataset@task.dataset=synthetic_lookup", "task.max_examples=32", "task.k=2",
         "task.max_new_tokens=24", "task.splits=[train]"]
FULLY_SPECIFIED_EXAMPLES = 40
REPORT_GROUP_BY = "dataset,split,data,model,approach,trainer,act_ablation,train_dataset,simulator,max_turns,max_examples"
REPORT_COLUMNS = ("label,runs,n_examples,accuracy,macro_f1,clarify_precision,clarify_recall,turn_h,trajectory_h,"
                  "post_clarify_h")


def stages(run: Path, seed: int) -> list[tuple[str, Path, list[str]]]:
    """``(name, output that marks it done, command)`` for one seed, in order."""
    py, common = [sys.executable], [f"seed={seed}", "reuse_run_dir=true"]
    ev = [*py, "evaluate.py", "experiment=demo", *common]
    return [
        ("base fully specified", run / "base_fully_specified" / "fully_specified.json",
         [*ev, "protocol=fully_specified", "label=base", f"max_examples={FULLY_SPECIFIED_EXAMPLES}", "logger=none",
          f"hydra.run.dir={run}/base_fully_specified"]),
        ("SFT", run / "sft" / "policy", [*py, "train.py", "experiment=demo", *common, f"hydra.run.dir={run}/sft"]),
        ("ACT Alg. 1 pairs", run / "act_pairs" / "train.jsonl",
         [*py, "generate.py", *PAIRS, f"task.seed={seed}", f"task.out_dir={run}/act_pairs",
          f"hydra.run.dir={run}/act_pairs/run", "reuse_run_dir=true"]),
        ("ACT Alg. 2", run / "act" / "policy",
         [*py, "train.py", "experiment=demo_act", *common, f"sft_policy={run}/sft/policy",
          f"act_pairs_dir={run}/act_pairs", f"hydra.run.dir={run}/act"]),
        ("evaluate base", run / "eval_base" / "metrics.json", [*ev, "label=base", f"hydra.run.dir={run}/eval_base"]),
        ("evaluate SFT", run / "eval_sft" / "metrics.json",
         [*ev, "label=sft", f"policy_dir={run}/sft/policy", f"hydra.run.dir={run}/eval_sft"]),
        ("evaluate ACT", run / "eval_act" / "metrics.json",
         [*ev, "label=act", f"policy_dir={run}/act/policy", f"hydra.run.dir={run}/eval_act"]),
    ]


def run_seed(run: Path, seed: int) -> dict[str, float | None]:
    """Run the missing stages of one seed; returns stage -> seconds (None: skipped, done before)."""
    times_path = run / "stage_times.json"
    times: dict[str, float | None] = json.loads(times_path.read_text()) if times_path.is_file() else {}
    for name, done, command in stages(run, seed):
        if done.exists():
            print(f"== seed {seed}: {name}: done before ({done}), skipped", flush=True)
            times.setdefault(name, None)
            continue
        print(f"== seed {seed}: {name}\n   {' '.join(command[1:])}", flush=True)
        start = time.monotonic()
        subprocess.run(command, cwd=ROOT, check=True)
        times[name] = round(time.monotonic() - start, 1)
        write_json(times_path, times)
    return times


def branch_counts(run: Path) -> dict[str, int]:
    """ACT Alg. 2 branch counts of one run from ``act/act_samples/rank*.jsonl`` (one line per sampled pair),
    plus ``winner_replaced_from_clarify``: winning trajectories (``good_trajectory``) that began with a clarifying
    question, i.e. ask-then-answer conversations that became the chosen side."""
    counts: Counter[str] = Counter()
    for path in sorted((run / "act" / "act_samples").glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            counts[record["branch"]] += 1
            if record["branch"] == "good_trajectory" and record.get("sample_action") == "clarify":
                counts["winner_replaced_from_clarify"] += 1
    counts["samples"] = sum(v for k, v in counts.items() if k != "winner_replaced_from_clarify")
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    out = Path(args.out).resolve()
    runs = {seed: out if len(args.seeds) == 1 else out / f"seed{seed}" for seed in args.seeds}
    start = time.monotonic()
    times = {seed: run_seed(run, seed) for seed, run in runs.items()}
    eval_dirs = [str(run / f"eval_{label}") for run in runs.values() for label in ("base", "sft", "act")]
    subprocess.run([sys.executable, "experiments/report.py", *eval_dirs, "--out", str(out / "results.md"),
                    "--group-by", REPORT_GROUP_BY, "--columns", REPORT_COLUMNS,
                    "--title", f"base / SFT / ACT on synthetic_lookup, seeds {args.seeds}"], cwd=ROOT, check=True)
    branches = {seed: branch_counts(run) for seed, run in runs.items()}
    fully = {seed: json.loads((run / "base_fully_specified" / "fully_specified.json").read_text())
             for seed, run in runs.items()}
    write_json(out / "branches.json", {str(k): v for k, v in branches.items()})
    write_json(out / "stage_times_by_seed.json", {str(k): v for k, v in times.items()})  # not a run's own stage_times.json
    from clarifylab.evaluation.plots import plot_demo

    plot_demo({f"seed {seed}": run for seed, run in runs.items()}, out / "results.csv", out / "curves.png")
    print("\n== closing note ==")
    for seed in args.seeds:
        stage_text = ", ".join(f"{k} {v / 60:.1f} min" if v is not None else f"{k} (done before)"
                               for k, v in times[seed].items())
        print(f"seed {seed}: stages: {stage_text}")
        print(f"seed {seed}: base model on the fully specified questions: {fully[seed]['accuracy']:.1%} "
              f"({fully[seed]['correct']}/{fully[seed]['n']})")
        print(f"seed {seed}: ACT Alg. 2 branches: {json.dumps(branches[seed], sort_keys=True)}")
    print(f"this invocation: {(time.monotonic() - start) / 60:.1f} min")
    print((out / "results.md").read_text())
    print(f"wrote {out}/results.md, results.csv, branches.json, stage_times_by_seed.json, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
