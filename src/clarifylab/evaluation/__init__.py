"""Evaluation: multi-turn rollouts -> the papers' columns -> result files, W&B tables and reports;
in-context prompting baselines.

Modules: ``evaluator`` (rollouts and metrics), ``outputs`` (metrics.json/.csv, results.md,
trajectories.jsonl), ``tables`` (comparison tables, multirun aggregation), ``baselines`` (ACT App. E
prompting styles), ``components`` (policy/simulator/classifier from config), ``experiment_log``
(W&B/CSV loggers), ``policy_eval`` (evaluate.py's recipe), ``eval_sample`` (the seeded ``max_examples``
sample), ``run_provenance`` (data file + hash, overrides, code version, a policy's training run). Importing
this package imports no torch.
"""

from clarifylab.evaluation.evaluator import EvalResult, TrajectoryRecord, evaluate_policy, summarize
from clarifylab.evaluation.outputs import write_eval_outputs
from clarifylab.evaluation.tables import aggregate_runs, build_report, find_eval_dirs, read_eval_summaries

__all__ = ["EvalResult", "TrajectoryRecord", "aggregate_runs", "build_report", "evaluate_policy", "find_eval_dirs",
           "read_eval_summaries", "summarize", "write_eval_outputs"]
