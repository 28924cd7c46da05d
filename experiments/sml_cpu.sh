#!/usr/bin/env bash
# SML at CPU scale in one command (README "Social meta-learning (SML)"): base vs offline SML vs online SML vs
# Q-priming + online SML with the bundled SmolLM2-135M-Instruct, evaluated on sharded synthetic_tables problems
# (DATASET=tatqa: TAT-QA dev problems in every stage; the builders' kept dialogues are read with dataset=ts_curriculum).
#   bash experiments/sml_cpu.sh [OUT=outputs/sml_cpu]      sizes: N_GEN (problems per builder), SAMPLES, ...
# Every step writes into its own folder under $OUT and is skipped when its output exists (rerun = resume).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/sml_cpu}
PY=${PY:-.venv/bin/python}
STUDENT=${STUDENT:-smollm2}    # smollm2 | tiny (a smoke test of the pipeline)
N_GEN=${N_GEN:-12}            # training problems per builder (fully specified)
SAMPLES=${SAMPLES:-2}         # dialogues per problem in the builders
TURNS=${TURNS:-3}             # student turns per training dialogue (paper: 4)
EVAL_TURNS=${EVAL_TURNS:-6}   # student turns per sharded evaluation dialogue (paper: 10)
ONLINE_STEPS=${ONLINE_STEPS:-2}  # RL steps per online run
KINDS=${KINDS:-null}          # question kinds of the corpus, e.g. "[lookup]" (null = all four)
CORPUS="$OUT/data/corpus"     # the synthetic_tables corpus of this run (built on first use with KINDS)
DATASET=${DATASET:-synthetic_tables}  # synthetic_tables | tatqa
TATQA_CHARS=${TATQA_CHARS:-1200}      # tatqa: bound on the linearized table+text in prompts (CPU time)
if [ "$DATASET" = tatqa ]; then
  DATA=(dataset=tatqa dataset.max_context_chars=$TATQA_CHARS)
  TASK_DATA=(dataset@task.dataset=tatqa task.dataset.max_context_chars=$TATQA_CHARS)
  SFT_DATA=(dataset=ts_curriculum)    # kept dialogues are tatqa Examples; this loader reads any <split>.jsonl
else
  DATA=(dataset.dir="$CORPUS" "dataset.kinds=$KINDS")
  TASK_DATA=(task.dataset.dir="$CORPUS" "task.dataset.kinds=$KINDS")
  SFT_DATA=(dataset.auto_generate=false "dataset.kinds=$KINDS")
fi
BUILD=("${TASK_DATA[@]}" teacher@task.student=$STUDENT task.max_problems=$N_GEN task.samples_per_problem=$SAMPLES task.max_student_turns=$TURNS
       "task.splits=[train]" task.max_new_tokens=32 task.teacher_max_new_tokens=40)
mkdir -p "$OUT"
started=$(date +%s)
step() { echo "[sml_cpu] $(date -u +%H:%M:%S) $*"; }
kept() { [ -s "$1/train.jsonl" ] && wc -l < "$1/train.jsonl" || echo 0; }

step "1/8 offline SML dialogues"
[ -f "$OUT/data/sml_dialogues/manifest.json" ] || $PY generate.py task=sml_dialogues "${BUILD[@]}" \
  task.out_dir="$OUT/data/sml_dialogues" hydra.run.dir="$OUT/gen_sml" reuse_run_dir=true
step "2/8 Q-priming dialogues"
[ -f "$OUT/data/q_priming/manifest.json" ] || $PY generate.py task=q_priming "${BUILD[@]}" \
  task.out_dir="$OUT/data/q_priming" hydra.run.dir="$OUT/gen_qp" reuse_run_dir=true

sft() {  # $1 = data folder, $2 = run folder
  if [ "$(kept "$1")" -eq 0 ]; then step "no kept dialogues in $1: SFT skipped"; return; fi
  [ -d "$2/policy" ] || $PY train.py experiment=sml/cpu_sft student=$STUDENT "${SFT_DATA[@]}" dataset.dir="$1" \
    dataset.val_split=null hydra.run.dir="$2" reuse_run_dir=true
}
step "3/8 offline SML (SFT on $(kept "$OUT/data/sml_dialogues") kept dialogues)"; sft "$OUT/data/sml_dialogues" "$OUT/train_offline"
step "4/8 Q-priming SFT ($(kept "$OUT/data/q_priming") kept dialogues)"; sft "$OUT/data/q_priming" "$OUT/train_qprime"
step "5/8 online SML from the base model"
[ -d "$OUT/train_online/policy" ] || $PY train.py experiment=sml/cpu_online student=$STUDENT trainer.max_student_turns=$TURNS trainer.max_steps=$ONLINE_STEPS \
  "${DATA[@]}" hydra.run.dir="$OUT/train_online" reuse_run_dir=true
evaluate() {  # $1 = label, $2 = policy dir or "", $3 = approach
  local run="$OUT/eval_$1"; [ -f "$run/metrics.json" ] && return
  local policy=(); [ -n "$2" ] && policy=(policy_dir="$2")
  $PY evaluate.py experiment=sml/cpu student=$STUDENT protocol=sml_sharded protocol.max_turns=$EVAL_TURNS \
    "${DATA[@]}" label="$1" approach="$3" \
    "${policy[@]}" progress=false hydra.run.dir="$run" reuse_run_dir=true
}
step "6/8 sharded evaluation (base, offline, online)"
evaluate base "" base
[ -d "$OUT/train_offline/policy" ] && evaluate offline_sml "$OUT/train_offline/policy" offline_sml
evaluate online_sml "$OUT/train_online/policy" online_sml
step "7/8 online SML from the Q-priming policy, and its evaluation"
if [ -d "$OUT/train_qprime/policy" ]; then
  [ -d "$OUT/train_qprime_online/policy" ] || $PY train.py experiment=sml/cpu_online student=$STUDENT trainer.max_student_turns=$TURNS trainer.max_steps=$ONLINE_STEPS \
    "${DATA[@]}" trainer.init_policy="$OUT/train_qprime/policy" hydra.run.dir="$OUT/train_qprime_online" reuse_run_dir=true
fi

[ -d "$OUT/train_qprime_online/policy" ] && evaluate qprime_online_sml "$OUT/train_qprime_online/policy" qprime_online_sml
step "8/8 report"
$PY experiments/report.py "$OUT"/eval_* --title "SML, CPU scale (SmolLM2-135M, sharded $DATASET)" \
  --columns label,approach,n_dialogues,success,success_at_1,success_at_2,success_at_4,premature_per_dialogue,premature_any_rate,question_rate,answer_logp_t1,answer_logp_t3 \
  --out "$OUT/results.md"
step "done in $(( $(date +%s) - started )) s -> $OUT/results.md"
