"""The teacher-student benchmark: ``python evaluate.py protocol=ts_benchmark dataset=ts_curriculum
dataset.dir=<build>`` (a local ``student`` / ``policy_dir``, or ``policy=openai`` for any OpenAI-compatible endpoint).

For every verified ablated task of the split (``test`` = the held-out tables' tasks) the policy plays the
scenarios of :mod:`~clarifylab.methods.ts.benchmark_metrics` (which defines AccOr, AccCl, AccCo and clarification
precision / recall); every call is batched over the split. The user is simulated from the build's record of what
was removed (``meta.ts.removed.user_text``); whether a clarifying question targets it is judged by
``protocol.judge`` (``rule``: :func:`~clarifylab.methods.ts.judge.rule_targets`; ``teacher``: the teacher backend
``protocol.teacher`` answers the yes/no prompt).

Writes ``metrics.json`` (the run identity of ``evaluation/policy_eval.py`` + data file and hash, overall metrics,
``by_strategy``), ``metrics.csv``, ``results.md`` (one row per strategy and ``all``, columns per scenario) and
``pairs.jsonl`` (every response), and logs the numbers to the configured loggers (W&B / CSV).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.teacher_nodes import build_teacher, plain
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.env.action_classifier import classify_response
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.evaluation.components import build_policy_backend
from clarifylab.evaluation.eval_sample import SAMPLING, sample_eval_examples
from clarifylab.evaluation.experiment_log import log_evaluation
from clarifylab.evaluation.policy_eval import run_identity
from clarifylab.evaluation.run_provenance import code_version, data_identity, hydra_overrides, trained_run_info
from clarifylab.evaluation.tables import csv_table, markdown_table, rich_table, wide_console
from clarifylab.io import atomic_open, write_json, write_text
from clarifylab.methods.ts.benchmark_metrics import PairOutcome, metrics_by_strategy
from clarifylab.methods.ts.curriculum import Scorer
from clarifylab.methods.ts.judge import parse_yes, rule_targets
from clarifylab.methods.ts.prompts import (NOT_TARGETED_REPLY, continue_messages, correction_reply, judge_messages,
                                           student_answer_messages, student_clarify_messages)

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("strategy", "n_pairs", "acc_or", "acc_cl", "acc_co", "clarify_precision", "clarify_recall",
                 "targeted_rate")
HEADERS = {"strategy": "Strategy", "n_pairs": "Pairs", "acc_or": "AccOr", "acc_cl": "AccCl", "acc_co": "AccCo",
           "clarify_precision": "Clar. P", "clarify_recall": "Clar. R", "targeted_rate": "Targeted"}


def original_example(example: Example) -> Example:
    """The fully specified task of an ablated benchmark Example (``meta.ts.original_question/_context``)."""
    ts = example.meta.get("ts") or {}
    if "original_question" not in ts or "original_context" not in ts:
        raise DataFormatError(f"example {example.id!r} has no meta.ts.original_question/original_context: evaluate "
                              "protocol=ts_benchmark on the test split of a task=ts_curriculum build")
    return replace(example, id=f"{example.id}:original", context=ts["original_context"],
                   history=[Turn("user", ts["original_question"])])


def _complete(backend: ChatBackend, prompts: list, params: SamplingParams) -> list[str]:
    return [str(r) for r in backend.complete(prompts, params)] if prompts else []


def play_pairs(policy: ChatBackend, examples: Sequence[Example], scorers: dict[str, Scorer], params: SamplingParams,
               judge: str = "rule", teacher: ChatBackend | None = None,
               teacher_params: SamplingParams | None = None) -> tuple[list[PairOutcome], list[dict[str, Any]]]:
    """Run every scenario on every (original, ablated) pair; returns the outcomes and one log record per pair."""
    originals = [original_example(e) for e in examples]
    missing = [e.meta["ts"]["removed"] for e in examples]

    def correct(predictions: list[str], items: Sequence[Example], supplied: Sequence[str] | None = None) -> list[bool]:
        told = list(supplied) if supplied is not None else [""] * len(items)
        out = [False] * len(items)
        for task, scorer in scorers.items():
            idx = [i for i, e in enumerate(items) if e.task == task]
            verdicts = scorer.correct([predictions[i] for i in idx], [items[i] for i in idx], [told[i] for i in idx])
            for i, ok in zip(idx, verdicts):
                out[i] = ok
        return out

    answer_orig = _complete(policy, [student_answer_messages(e) for e in originals], params)
    ask_prompts_orig = [student_clarify_messages(e) for e in originals]
    first_orig = _complete(policy, ask_prompts_orig, params)
    ask_prompts = [student_clarify_messages(e) for e in examples]
    first = _complete(policy, ask_prompts, params)
    answer_abl = _complete(policy, [student_answer_messages(e) for e in examples], params)
    original_ok = correct(answer_orig, originals)
    asked_orig = [classify_response(r) is Action.CLARIFY for r in first_orig]
    asked = [classify_response(r) is Action.CLARIFY for r in first]
    ask_idx = [i for i, a in enumerate(asked) if a]
    if judge == "teacher":
        if teacher is None:
            raise ConfigError("protocol.judge=teacher needs protocol.teacher (a backend node, conf/teacher/*.yaml)")
        replies = _complete(teacher, [judge_messages(missing[i]["user_text"], first[i]) for i in ask_idx],
                            teacher_params or SamplingParams(max_new_tokens=8))
        verdicts = [parse_yes(r) for r in replies]
    elif judge == "rule":
        verdicts = [rule_targets(missing[i], first[i]) for i in ask_idx]
    else:
        raise ConfigError(f"protocol.judge={judge!r}; choose rule or teacher")
    targeted = [False] * len(examples)
    for i, ok in zip(ask_idx, verdicts):
        targeted[i] = ok
    user_replies = {i: missing[i]["user_text"] if targeted[i] else NOT_TARGETED_REPLY for i in ask_idx}
    second = _complete(policy, [continue_messages(ask_prompts[i], first[i], user_replies[i]) for i in ask_idx], params)
    cl_final = list(first)
    for i, reply in zip(ask_idx, second):
        cl_final[i] = reply
    cl_ok = correct(cl_final, examples, [user_replies.get(i, "") for i in range(len(examples))])
    for i, reply in zip(ask_idx, second):  # a second question is no answer
        if classify_response(reply) is Action.CLARIFY:
            cl_ok[i] = False
    first_ok = correct(answer_abl, examples)
    wrong = [i for i, ok in enumerate(first_ok) if not ok]
    corrected = _complete(policy, [continue_messages(student_answer_messages(examples[i]), answer_abl[i],
                                                     correction_reply(missing[i]["user_text"])) for i in wrong], params)
    co_final = list(answer_abl)
    for i, reply in zip(wrong, corrected):
        co_final[i] = reply
    co_ok = list(first_ok)
    for i, ok in zip(wrong, correct([co_final[i] for i in wrong], [examples[i] for i in wrong],
                                    [correction_reply(missing[i]["user_text"]) for i in wrong])):
        co_ok[i] = ok
    outcomes, records = [], []
    for i, e in enumerate(examples):
        outcome = PairOutcome(e.meta["ts"]["strategy"], original_ok[i], asked_orig[i], asked[i], targeted[i],
                              cl_ok[i], co_ok[i])
        outcomes.append(outcome)
        records.append({"id": e.id, **asdict(outcome), "original_answer": answer_orig[i],
                        "first_original": first_orig[i], "first_ablated": first[i],
                        "clarification_final": cl_final[i], "correction_first": answer_abl[i],
                        "correction_final": co_final[i], "user_text": missing[i]["user_text"]})
    return outcomes, records


def run_ts_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one policy on ``cfg.split`` of a curriculum build; returns the ``metrics.json`` object."""
    random.seed(cfg.seed)
    split_examples = load_dataset_split(cfg.dataset, cfg.split, cfg.paths)
    examples = sample_eval_examples(split_examples, cfg.max_examples, int(cfg.seed))
    if not examples:
        raise DataFormatError(f"{cfg.dataset.name}/{cfg.split} holds no examples: nothing to evaluate")
    sample = {"max_examples": cfg.max_examples, "sampling": SAMPLING if len(examples) < len(split_examples) else "all",
              "n_examples_in_split": len(split_examples)}
    data = data_identity(cfg.dataset, str(cfg.split))
    meter = UsageMeter()
    backend, described = build_policy_backend(cfg)
    policy = meter.track("policy", backend, cost=cfg.policy.get("cost"))
    teacher = None
    if cfg.protocol.judge == "teacher":
        teacher = build_teacher(cfg.protocol.teacher, cfg.paths.cache_dir, meter, "teacher",
                                "python evaluate.py protocol=ts_benchmark teacher@protocol.teacher=smollm2")
    trained = trained_run_info(cfg.policy_dir) if cfg.get("policy_dir") else {}
    identity = {**run_identity(cfg, described, trained), **data, **sample}
    generation = cfg.generation
    params = SamplingParams(max_new_tokens=int(generation.max_new_tokens), temperature=float(generation.temperature),
                            top_p=float(generation.top_p), seed=cfg.seed)
    scorers = {task: Scorer(task, plain(cfg.paths), str(cfg.protocol.match)) for task in sorted({e.task for e in examples})}
    log.info("ts_benchmark: %s on %s/%s, %d pairs", identity["label"], cfg.dataset.name, cfg.split, len(examples))
    outcomes, records = play_pairs(policy, examples, scorers, params, str(cfg.protocol.judge), teacher)
    by_strategy = metrics_by_strategy(outcomes)
    metrics: dict[str, Any] = {**identity, **by_strategy["all"], "heuristic": ",".join(sorted(scorers)),
                               "judge": str(cfg.protocol.judge), "match": str(cfg.protocol.match),
                               "judge_model": teacher.model_id if teacher is not None else None,
                               "by_strategy": by_strategy,
                               "policy_source": described["source"], "code_version": code_version(),
                               **hydra_overrides(), "train_seed": trained.get("train_seed"),
                               "train_overrides": trained.get("train_overrides"), "usage": meter.summary()}
    out = Path(cfg.output_dir)
    write_json(out / "metrics.json", metrics)
    rows = [{"strategy": name, **values} for name, values in by_strategy.items()]
    write_text(out / "metrics.csv", csv_table(rows))
    title = f"{identity['label']} on {cfg.dataset.name}/{cfg.split} (teacher-student benchmark)"
    write_text(out / "results.md", f"# {title}\n\n{markdown_table(rows, TABLE_COLUMNS, headers=HEADERS)}")
    with atomic_open(out / "pairs.jsonl") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    flat = {f"{name}/{key}": value for name, values in by_strategy.items() for key, value in values.items()}
    log_evaluation(cfg.get("logger"), {**{k: v for k, v in metrics.items() if isinstance(v, (int, float))}, **flat}, [])
    console = wide_console()
    console.print(rich_table(rows, TABLE_COLUMNS, title=title, headers=HEADERS))
    console.print(meter.table())
    print(f"evaluate: wrote metrics.json, metrics.csv, results.md, pairs.jsonl to {cfg.output_dir}")
    return metrics
