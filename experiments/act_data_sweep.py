"""Run ACT's data-size sweep (Tables 1-3) and print the tables: pairs -> SFT -> IRPO/ACT -> evaluate -> report.

    python experiments/act_data_sweep.py outputs/act_tables                       # paper scale (GPU, Zephyr-7B)
    python experiments/act_data_sweep.py outputs/act_cpu --scale cpu --datasets pacific --sizes 50
    python experiments/act_data_sweep.py outputs/act_tables --dry-run             # list the commands only

Each step is one train.py / generate.py / evaluate.py process (src/clarifylab/methods/act/data_size_sweep.py has the
plan); finished steps are skipped, so rerunning the same command resumes a stopped sweep. Extra Hydra overrides
after `--` go to every train/evaluate command. The tables are printed and written to <root>/tables.md.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's code (README "Paths")

from clarifylab.config import PROJECT_ROOT  # noqa: E402
from clarifylab.errors import ClarifyLabError  # noqa: E402
from clarifylab.methods.act.data_size_sweep import DATASETS, SCALES, TRAINERS, plan  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="output folder of the whole sweep")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--sizes", default="50,100,250", help="training conversations per setting")
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--scale", choices=SCALES, default="paper")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (cpu/smoke scale)")
    parser.add_argument("--eval-examples", type=int, default=40, help="evaluation examples (cpu/smoke scale)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    args, extra = parser.parse_known_args(argv)
    extra = [arg for arg in extra if arg != "--"]
    try:
        steps = plan(args.root, args.datasets.split(","), [int(n) for n in args.sizes.split(",")],
                     args.trainers.split(","), args.scale, args.steps, args.eval_examples, extra)
    except (ClarifyLabError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for i, step in enumerate(steps, 1):
        command = [sys.executable, *step.argv]
        if step.marker.exists():
            print(f"[{i}/{len(steps)}] {step.name}: done ({step.marker}), skipped")
            continue
        print(f"[{i}/{len(steps)}] {step.name}: {' '.join(step.argv)}", flush=True)
        if args.dry_run:
            continue
        start = time.monotonic()
        if subprocess.run(command, cwd=PROJECT_ROOT).returncode != 0 or not step.marker.exists():
            print(f"error: step '{step.name}' failed (its log is under its hydra.run.dir); fix it and rerun this "
                  "command: finished steps are skipped", file=sys.stderr)
            return 1
        print(f"[{i}/{len(steps)}] {step.name}: {time.monotonic() - start:.0f} s", flush=True)
    if args.dry_run:
        return 0
    report = [sys.executable, "experiments/report.py", f"{args.root}/eval", "--layout", "act",
              "--title", f"ACT data-size sweep ({args.scale} scale)", "--out", f"{args.root}/tables.md"]
    return subprocess.run(report, cwd=PROJECT_ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
