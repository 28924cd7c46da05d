#!/usr/bin/env bash
# The teacher-student curriculum at CPU scale in one command (README "Teacher-student curriculum"): build the WTQ
# and TAT-QA dev curricula with the bundled SmolLM2-135M as teacher and student, benchmark the base model on each
# build's held-out tables, fine-tune it on each build that kept dialogues (LoRA r = alpha = 16, 4 epochs, lr 1e-4),
# benchmark the fine-tuned policy, and write the yield and benchmark tables.
#   bash experiments/ts_cpu.sh [OUT=outputs/ts_cpu]      sizes: SOURCES (per dataset), PAIRS (benchmark sample);
#   DATASETS="wtq" (or "tatqa") runs one dataset's steps
# The builds resume (a larger SOURCES extends a smaller build); every other step is skipped when its output exists.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/ts_cpu}
PY=${PY:-.venv/bin/python}
SOURCES=${SOURCES:-100}       # source questions per dataset (the issue's acceptance: >= 100)
PAIRS=${PAIRS:-null}          # benchmark pairs per evaluation (null = the whole test split; n = a seeded sample)
BUILDS=${BUILDS:-data/generated/ts_curriculum}   # builds go to $BUILDS/cpu-<dataset> (the experiments' out_dir)
DATASETS=${DATASETS:-wtq tatqa}
mkdir -p "$OUT"
started=$(date +%s)
step() { echo "[ts_cpu] $(date -u +%H:%M:%S) $*"; }
kept() { [ -s "$1/train.jsonl" ] && wc -l < "$1/train.jsonl" || echo 0; }

for ds in $DATASETS; do
  step "build $ds ($SOURCES sources)"
  $PY generate.py experiment=ts/cpu_build_$ds task.max_sources=$SOURCES task.out_dir="$BUILDS/cpu-$ds" \
    hydra.run.dir="$OUT/gen_$ds" reuse_run_dir=true
done
evaluate() {  # $1 = dataset, $2 = label, $3 = policy dir or ""
  local run="$OUT/eval_$1_$2"; [ -f "$run/metrics.json" ] && return
  local policy=(); [ -n "$3" ] && policy=(policy_dir="$3")
  $PY evaluate.py experiment=ts/cpu_benchmark dataset.dir="$BUILDS/cpu-$1" max_examples=$PAIRS label="$2" \
    "${policy[@]}" hydra.run.dir="$run" reuse_run_dir=true
}
for ds in $DATASETS; do
  step "benchmark the base model on $ds"; evaluate $ds base ""
  n=$(kept "$BUILDS/cpu-$ds")
  if [ "$n" -eq 0 ]; then step "$ds kept no training dialogue: no fine-tune"; continue; fi
  step "fine-tune on $ds ($n dialogues)"
  val=(); [ -s "$BUILDS/cpu-$ds/validation.jsonl" ] || val=(dataset.val_split=null)
  [ -d "$OUT/train_$ds/policy" ] || $PY train.py experiment=ts/cpu_finetune dataset.dir="$BUILDS/cpu-$ds" "${val[@]}" \
    hydra.run.dir="$OUT/train_$ds" reuse_run_dir=true
  step "benchmark the fine-tuned model on $ds"; evaluate $ds finetuned "$OUT/train_$ds/policy"
done
step "report"
$PY experiments/ts_yield.py $(for ds in $DATASETS; do echo "$BUILDS/cpu-$ds"; done) | tee "$OUT/yield.md"
$PY experiments/report.py "$OUT"/eval_* --title "Teacher-student benchmark, CPU scale (SmolLM2-135M)" --out "$OUT/results.md"
step "done in $(( $(date +%s) - started )) s -> $OUT/yield.md, $OUT/results.md"
