"""``generate.py task=sml_dialogues`` (offline SML data) and ``task=q_priming`` (Q-priming data).

Both simulate pedagogical dialogues (:func:`~clarifylab.methods.sml.dialogue.run_dialogues`) on fully
specified problems of the dataset's splits and keep the successful ones as SFT Examples: the history holds
the question, the student's earlier turns and the teacher's feedback, the response is the correct final
attempt, so ``trainer=sft`` (``loss_on=all_assistant``) trains on every student turn of a kept dialogue and
never on the teacher's. Dialogues whose teacher feedback leaked the answer are dropped and counted.
``q_priming`` adds the question replacement (probability ``q_priming_base ** t`` at wrong turn ``t``).

Resumable like the AmbigSQL build: one record per dialogue in the append-only, fsynced
``<out_dir>/progress.jsonl`` (:mod:`clarifylab.data.builders.ambigsql_log`), a chunk of ``batch_size``
problems at a time; a rerun with the same settings skips logged dialogues, and the call caches of the
student/teacher backends make recomputed calls free.

The problems are the trainer's (:func:`~clarifylab.methods.sml.problems.load_problems`): ``synthetic_tables``
(default) or TAT-QA (``dataset@task.dataset=tatqa``; questions without a shardable span are skipped there too).
The split files hold the source task's Examples: train on a ``synthetic_tables`` build with
``dataset.dir=<out_dir> dataset.auto_generate=false``, on a TAT-QA one with ``dataset=ts_curriculum
dataset.dir=<out_dir>`` (that loader reads any ``<split>.jsonl`` of Examples; H stays TAT-QA's). For a dataset
other than ``synthetic_tables`` the fingerprint also holds the source options (:func:`source_fingerprint`: file,
split plan), so a resume on another file or split is refused.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.teacher_nodes import build_teacher, plain
from clarifylab.data.builders.ambigsql_log import append_records, check_fingerprint, recover_log
from clarifylab.data.jsonl import write_examples
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.synthetic_tables import synthetic_design
from clarifylab.errors import ConfigError
from clarifylab.io import write_json
from clarifylab.methods.sml import teacher as teacher_prompts
from clarifylab.methods.sml.dialogue import Dialogue, heuristic_scorer, run_dialogues
from clarifylab.methods.sml.problems import SMLProblem, load_problems

log = logging.getLogger(__name__)

LOG_NAME = "progress.jsonl"
PROMPT_VERSION = 1


def dialogue_id(problem: SMLProblem, sample: int) -> str:
    return f"{problem.id}-s{sample}"


def dialogue_example(dialogue: Dialogue, sample: int, kind: str) -> Example:
    """A kept (successful) dialogue as an SFT Example: history = all turns but the last, response = the last."""
    problem = dialogue.problem
    turns = [Turn(m["role"], m["content"]) for m in dialogue.turns]
    meta = dict(problem.example.meta)
    meta.update(sml={"kind": kind, "success_turn": dialogue.success_turn, "authors": dialogue.authors,
                     "replaced_turns": dialogue.replaced_turns, "sample": sample})
    return Example(id=dialogue_id(problem, sample), task=problem.task, context=problem.context, history=turns[:-1],
                   response=turns[-1].content, action=Action.ANSWER, goal=[problem.answer], meta=meta)


def dialogue_record(dialogue: Dialogue, sample: int, split: str, kind: str) -> dict[str, Any]:
    """The progress-log line of one dialogue: its outcome and, when kept, its Example."""
    kept = dialogue.success_turn is not None and not dialogue.leaked
    reason = "kept" if kept else ("leak" if dialogue.leaked else "no_success")
    record = {"id": dialogue_id(dialogue.problem, sample), "split": split, "reason": reason,
              "leaks": dialogue.leaks, "replaced_turns": dialogue.replaced_turns,
              "student_turns": dialogue.student_turns, "attempts": dialogue.attempts,
              "wrong_turns": len(dialogue.attempts) - int(dialogue.success_turn is not None)}
    if kept:
        record["example"] = dialogue_example(dialogue, sample, kind).to_dict()
    return record


def _build_dialogues(kind: str, out_dir: str, dataset: Any, student: Any, teacher: Any, paths: Any,
                     splits: Sequence[str], max_problems: int | None, samples_per_problem: int,
                     max_student_turns: int, temperature: float, top_p: float, max_new_tokens: int,
                     teacher_max_new_tokens: int, seed: int, batch_size: int, threshold: float | None,
                     q_priming_base: float | None, backends: tuple[ChatBackend, ChatBackend] | None) -> dict[str, Any]:
    paths, splits = plain(paths), list(plain(splits))
    if samples_per_problem < 1 or batch_size < 1:
        raise ConfigError(f"{kind}: samples_per_problem and batch_size must be >= 1")
    instruction = dataset.instruction
    problems = {split: load_problems(dataset, split, paths, seed, max_problems) for split in splits}
    out = Path(out_dir)
    log_path = out / LOG_NAME
    student_params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=None if temperature == 0 else seed)
    teacher_params = SamplingParams(max_new_tokens=teacher_max_new_tokens)
    fingerprint = {"kind": kind, "prompt_version": PROMPT_VERSION, "dataset": str(dataset.name),
                   "instruction": instruction, "seed": seed, "samples_per_problem": samples_per_problem,
                   "max_student_turns": max_student_turns, "student_sampling": student_params.to_dict(),
                   "teacher_sampling": teacher_params.to_dict(), "threshold": threshold,
                   "q_priming_base": q_priming_base, "teacher_system": teacher_prompts.TEACHER_SYSTEM}
    source = source_fingerprint(dataset)
    if source:  # only for non-synthetic sources: synthetic_tables logs keep their earlier fingerprint
        fingerprint["source"] = source
    check_fingerprint(log_path, fingerprint)
    done = {r["id"] for r in recover_log(log_path)}
    meter = UsageMeter()
    todo = [(split, p, s) for split in splits for p in problems[split] for s in range(samples_per_problem)
            if dialogue_id(p, s) not in done]
    if todo:
        if backends is None:
            hint = f"python generate.py task={kind} teacher@task.student=smollm2"
            student_backend = build_teacher(student, paths["cache_dir"], meter, "student", hint)
            teacher_backend = (student_backend if teacher is None
                               else build_teacher(teacher, paths["cache_dir"], meter, "teacher", hint))
        else:
            student_backend, teacher_backend = backends
        scorer = heuristic_scorer(paths, threshold)
        _process(todo, student_backend, teacher_backend, scorer, log_path, kind=kind, batch_size=batch_size,
                 max_student_turns=max_student_turns, student_params=student_params, teacher_params=teacher_params,
                 instruction=instruction, q_priming_base=q_priming_base, seed=seed)
    records = recover_log(log_path)
    files, counts = {}, {}
    for split in splits:
        rows = [r for r in records if r["split"] == split]
        kept = [Example.from_dict(r["example"]) for r in rows if r["reason"] == "kept"]
        files[split] = str(out / f"{split}.jsonl")
        write_examples(files[split], kept)
        counts[split] = dialogue_counts(rows, len(problems[split]))
    # the source corpus's design options too: train.py checks them against dataset.* (check_synthetic_design)
    design = synthetic_design(dataset) if dataset.name == "synthetic_tables" else {}
    manifest = {"task": kind, "counts": counts, "files": files, "progress_log": str(log_path),
                "params": {**fingerprint, **design}, "usage": meter.summary()}
    write_json(out / "manifest.json", manifest)
    log.info("%s: %s -> %s", kind, counts, out)
    return {split: {k: counts[split][k] for k in ("dialogues", "kept", "dropped_leak", "no_success")}
            for split in splits}


SOURCE_IGNORED = ("name", "instruction", "train_split", "val_split", "eval_split", "max_train_examples",
                  "max_val_examples", "max_eval_examples")
"""Dataset keys that do not change a split's problems (the builders take ``splits`` and ``max_problems``)."""


def source_fingerprint(dataset: Any) -> dict[str, Any]:
    """The dataset options that fix which problems a split holds, for the resume check: every key of the node but
    :data:`SOURCE_IGNORED` (TAT-QA: ``path``, ``max_context_chars``, the split plan). Empty for
    ``synthetic_tables``, whose corpus manifest already guards its design
    (:func:`~clarifylab.data.synthetic_tables.check_synthetic_design`)."""
    if dataset.name == "synthetic_tables":
        return {}
    return {k: v for k, v in sorted(plain(dataset).items()) if k not in SOURCE_IGNORED}


def dialogue_counts(rows: Sequence[Mapping[str, Any]], n_problems: int) -> dict[str, Any]:
    """Per split: problems, dialogues, kept / dropped for a leak / unsolved, leaking teacher messages, and
    Q-priming replacements per turn (with the wrong turns that were eligible)."""
    reasons = Counter(r["reason"] for r in rows)
    replaced = Counter(t for r in rows for t in r["replaced_turns"])
    return {"problems": n_problems, "dialogues": len(rows), "kept": reasons["kept"],
            "dropped_leak": reasons["leak"], "no_success": reasons["no_success"],
            "leaking_teacher_messages": sum(r["leaks"] for r in rows),
            "replaced_by_turn": {str(t): replaced[t] for t in sorted(replaced)},
            "mean_student_turns_kept": (sum(r["student_turns"] for r in rows if r["reason"] == "kept")
                                        / max(reasons["kept"], 1))}


def _process(todo: Sequence[tuple[str, SMLProblem, int]], student: ChatBackend, teacher: ChatBackend, scorer: Any,
             log_path: Path, *, kind: str, batch_size: int, max_student_turns: int, student_params: SamplingParams,
             teacher_params: SamplingParams, instruction: str | None, q_priming_base: float | None,
             seed: int) -> None:
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"{kind} dialogues", total=len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            records = []
            for sample in sorted({s for _, _, s in chunk}):
                part = [(split, p) for split, p, s in chunk if s == sample]
                params = student_params if student_params.seed is None else SamplingParams(
                    student_params.max_new_tokens, student_params.temperature, student_params.top_p,
                    student_params.seed + 7919 * sample)
                rngs = [random.Random(f"{kind}/{seed}/{dialogue_id(p, sample)}") for _, p in part]
                dialogues = run_dialogues(student, teacher, [p for _, p in part], scorer,
                                          max_student_turns=max_student_turns, student_params=params,
                                          teacher_params=teacher_params, instruction=instruction,
                                          leak_policy="drop", q_priming_base=q_priming_base, rngs=rngs)
                records += [dialogue_record(d, sample, split, kind) for (split, _), d in zip(part, dialogues)]
            append_records(log_path, records)
            bar.advance(task, len(chunk))


def generate_sml_dialogues(out_dir: str, dataset: Any, student: Any, paths: Any, teacher: Any = None,
                           splits: Sequence[str] = ("train", "validation"), max_problems: int | None = None,
                           samples_per_problem: int = 1, max_student_turns: int = 4, temperature: float = 0.7,
                           top_p: float = 1.0, max_new_tokens: int = 48, teacher_max_new_tokens: int = 64,
                           seed: int = 0, batch_size: int = 8, threshold: float | None = None,
                           backends: tuple[ChatBackend, ChatBackend] | None = None) -> dict[str, Any]:
    """Offline SML data (module docstring).

    Args:
        out_dir: holds ``progress.jsonl``, ``<split>.jsonl`` and ``manifest.json``.
        dataset: the dataset node whose splits give the problems (``synthetic_tables`` or ``tatqa``;
            ``dataset.instruction`` = the student's).
        student: the student's backend node (conf/teacher/*.yaml kinds); teacher: the teacher's, or null for the
            same backend (the same model, given the solution).
        paths: conf/paths.
        splits, max_problems: which problems (the first ``max_problems`` per split).
        samples_per_problem: dialogues per problem (each with its own sampling seed).
        max_student_turns: student turns per dialogue (4 in the paper's training).
        temperature, top_p, max_new_tokens: the student's decoding; teacher_max_new_tokens: the teacher's (greedy).
        seed, batch_size: sampling seed; problems per chunk (one log append each).
        threshold: H success threshold (null = the task's).
        backends: already-built (student, teacher) backends (tests).
    """
    return _build_dialogues("sml_dialogues", out_dir, dataset, student, teacher, paths, splits, max_problems,
                            samples_per_problem, max_student_turns, temperature, top_p, max_new_tokens,
                            teacher_max_new_tokens, seed, batch_size, threshold, None, backends)


def generate_q_priming(out_dir: str, dataset: Any, student: Any, paths: Any, teacher: Any = None,
                       splits: Sequence[str] = ("train", "validation"), max_problems: int | None = None,
                       samples_per_problem: int = 1, max_student_turns: int = 4, q_priming_base: float = 0.75,
                       temperature: float = 0.7, top_p: float = 1.0, max_new_tokens: int = 48,
                       teacher_max_new_tokens: int = 64, seed: int = 0, batch_size: int = 8,
                       threshold: float | None = None,
                       backends: tuple[ChatBackend, ChatBackend] | None = None) -> dict[str, Any]:
    """Q-priming data: as :func:`generate_sml_dialogues`, a wrong attempt at turn ``t`` replaced by the
    teacher's question with probability ``q_priming_base ** t``."""
    return _build_dialogues("q_priming", out_dir, dataset, student, teacher, paths, splits, max_problems,
                            samples_per_problem, max_student_turns, temperature, top_p, max_new_tokens,
                            teacher_max_new_tokens, seed, batch_size, threshold, q_priming_base, backends)
