# %% [markdown]
# # Inspect a ClarifyLab run: training curve, result table, trajectories
#
# A notebook in the "percent" format: open it in Jupyter (with jupytext) or VS Code, or run it as a script:
#
#     .venv/bin/python notebooks/inspect_runs.py outputs/demo
#
# It reads what `train.py` and `evaluate.py` write (nothing else): `csv/metrics.csv` of a training run,
# `metrics.json` and `trajectories.jsonl` of evaluation runs, found recursively under the folder given.
# It writes `loss_curve.png` and `inspect.md` into that folder.

# %%
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402

from clarifylab.evaluation.tables import PAPER_COLUMNS, markdown_table, read_eval_summaries  # noqa: E402

RUN_ROOT = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "outputs/demo")
if not RUN_ROOT.is_dir():
    sys.exit(f"error: {RUN_ROOT} is not a folder; pass the output folder of a run, e.g. outputs/demo (run `make demo`)")
train_csvs = sorted(RUN_ROOT.rglob("csv/metrics.csv"))
eval_dirs = sorted(p.parent for p in RUN_ROOT.rglob("metrics.json"))
print(f"{RUN_ROOT}: {len(train_csvs)} training run(s), {len(eval_dirs)} evaluation run(s)")

# %% [markdown]
# ## Training curves (train loss per step, validation loss per validation)


# %%
def read_curve(path: Path, key: str) -> list[tuple[int, float]]:
    with path.open() as handle:
        return [(int(row["step"]), float(row[key])) for row in csv.DictReader(handle) if row.get(key)]


figure, axis = plt.subplots(figsize=(7, 4))
for path in train_csvs:
    run = path.parent.parent.relative_to(RUN_ROOT)
    for key, style in (("train/loss", "-"), ("val/loss", "o--")):
        points = read_curve(path, key)
        if points:
            axis.plot(*zip(*points), style, label=f"{run} {key}")
            print(f"{run} {key}: first {points[0][1]:.3f} -> last {points[-1][1]:.3f} over {len(points)} points")
axis.set_xlabel("optimizer step")
axis.set_ylabel("assistant-token NLL")
axis.legend(fontsize=8)
figure.tight_layout()
figure.savefig(RUN_ROOT / "loss_curve.png", dpi=100)

# %% [markdown]
# ## Result table (one row per evaluation run)

# %%
rows = read_eval_summaries(eval_dirs) if eval_dirs else []
table = markdown_table(rows, PAPER_COLUMNS) if rows else "(no evaluation runs)"
print(table)

# %% [markdown]
# ## Where the actions go wrong: gold vs predicted first action, and a few trajectories per cell

# %%
report = ["# Inspection of " + str(RUN_ROOT), "", table, ""]
for eval_dir in eval_dirs:
    path = eval_dir / "trajectories.jsonl"
    if not path.exists():
        continue
    trajectories = [json.loads(line) for line in path.open()]
    decisions: dict[str, dict] = {}  # one decision point per example, however many trajectories (interpretations)
    for trajectory in trajectories:
        decisions.setdefault(trajectory["id"], trajectory)
    confusion = Counter((t["gold_action"], t["predicted_action"]) for t in decisions.values())
    report += [f"## {eval_dir.relative_to(RUN_ROOT)}", "", "| gold \\ predicted | clarify | answer |", "|---|---|---|"]
    report += [f"| {gold} | {confusion[(gold, 'clarify')]} | {confusion[(gold, 'answer')]} |" for gold in ("clarify", "answer")]
    for gold, predicted in sorted(confusion):
        sample = next(t for t in trajectories if (t["gold_action"], t["predicted_action"]) == (gold, predicted))
        report += ["", f"- gold {gold} / predicted {predicted}: first response {sample['first_response']!r}; "
                   f"outcome {sample['outcome']!r}; goal {sample['goal']!r}"]
    report.append("")
(RUN_ROOT / "inspect.md").write_text("\n".join(report))
print("\n".join(report[4:]))
print(f"wrote {RUN_ROOT / 'loss_curve.png'} and {RUN_ROOT / 'inspect.md'}")
