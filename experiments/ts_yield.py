"""The yield of teacher-student curriculum builds: items alive after each stage, per strategy, and drops by reason.

    python experiments/ts_yield.py data/generated/ts_curriculum/cpu-wtq data/generated/ts_curriculum/cpu-tatqa

Each path is a ``task=ts_curriculum`` out_dir (its manifest.json). Prints one Markdown table per build, with the
planned sources, the kept dialogues per scenario, the split sizes and the build's model time (``build_s``).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's code (README "Paths")

from clarifylab.methods.ts.report_table import yield_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("builds", nargs="+", help="task=ts_curriculum out_dirs")
    args = parser.parse_args(argv)
    for build in args.builds:
        path = Path(build) / "manifest.json"
        if not path.is_file():
            print(f"error: {path} not found: pass the out_dir of a finished task=ts_curriculum build", file=sys.stderr)
            return 2
        manifest = json.loads(path.read_text(encoding="utf-8"))
        counts = manifest["counts"]
        print(f"## {build}: {counts['planned']} sources, dialogues {counts['dialogues']}, splits {counts['splits']}, "
              f"model time {manifest.get('build_s')} s over every invocation (None: log older than the timing)\n")
        print(yield_table(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
