#!/usr/bin/env bash
# STaR-GATE end to end at CPU scale with the bundled SmolLM2-135M-Instruct as Questioner, Roleplayer, oracle and
# judge: oracle answers for the A and B slices, 2 training iterations (experiment=star_gate/cpu), then win rates on
# the test slice (both protocols) and the log-prob curve, then experiments/report.py's win-rate table of the run.
#   bash experiments/star_gate_cpu.sh [RUN_DIR]      (TASKS=10 PERSONAS=2 N=4 by default)
# Re-running with the same RUN_DIR continues it: the oracle build resumes, finished iterations are skipped, the
# evaluation is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-outputs/star_gate_cpu/$(date +%Y%m%d-%H%M%S)}
TASKS=${TASKS:-10}; PERSONAS=${PERSONAS:-2}; N=${N:-4}
PY="nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python"
ORACLE=data/generated/stargate_oracle_cpu
SLICE="dataset.max_tasks=$TASKS dataset.max_personas=$PERSONAS"
start=$(date +%s)
for split in A B; do
  $PY generate.py task=stargate_oracle task.split=$split task.max_tasks=$TASKS task.max_personas=$PERSONAS \
    task.max_new_tokens=96 task.out_dir=$ORACLE hydra.run.dir=$RUN/oracle_$split reuse_run_dir=true
done
$PY train.py experiment=star_gate/cpu $SLICE dataset.oracle_dir=$PWD/$ORACLE trainer.num_conversations=$N \
  hydra.run.dir=$RUN/train reuse_run_dir=true
$PY evaluate.py protocol=star_gate_win_rate dataset=stargate student=smollm2 $SLICE protocol.train_dir=$RUN/train \
  protocol.answer_max_new_tokens=64 protocol.question_max_new_tokens=32 protocol.roleplayer_max_new_tokens=32 \
  label=star_gate_cpu hydra.run.dir=$RUN/eval reuse_run_dir=true
$PY experiments/report.py $RUN/eval --out $RUN/report.md --title "STaR-GATE CPU slice"
echo "star-gate cpu: wall time $(( $(date +%s) - start )) s; results in $RUN/eval/results.md"
