"""The teacher-student clarification and correction curriculum for table QA (Poelitz & McKenna 2025, §3).

``python generate.py task=ts_curriculum teacher@task.teacher=... teacher@task.student=... ablation@task.ablation=...
dataset@task.dataset=tatqa|wtq`` runs, per chunk of ``batch_size`` planned source questions (one fsynced append
to ``<out_dir>/progress.jsonl`` per chunk, one record per (question, strategy)):

1. **Needed information** (:func:`identify`): ``identify=teacher`` asks the teacher which column the question
   needs (:func:`~clarifylab.methods.ts.prompts.identify_messages`); the named column is used only when it holds
   a lookup cell of the answer (verified), else the rule's choice
   (:func:`~clarifylab.data.ablation_strategies.identify_needed_info`), counted as ``teacher_unverified``.
2. **Ablation** (``data/ablation_strategies.py``): each strategy of ``ablation.strategies`` removes one piece and
   records it; refusals are counted by reason; table ablations are verified by lookup.
3. **Student-fails filter.** The student answers the ablated question (answer-only prompt); the task is kept when
   H < the task's success threshold (``training.task_success``). ``require_original_correct``: also require
   that the student answers the original question correctly (a task it *now* fails).
4. **Clarification dialogue.** The student gets the ablated question with permission to ask
   (:func:`~clarifylab.methods.ts.prompts.student_clarify_messages`); the heuristic action classifier decides
   whether it asked; the teacher judges whether the question targets the missing information (``judge=teacher``:
   a yes/no prompt; ``rule``: :func:`~clarifylab.methods.ts.judge.rule_targets`); if so the teacher, as user,
   answers with the recorded missing information (``removed.user_text``) and the student answers again.
   ``clarify_guide=rule``: when the student answers instead of asking, the teacher guides it with the question
   :func:`~clarifylab.methods.ts.prompts.guided_question` writes from what was removed (the paper's teacher
   "guides a student model to ask"); the question is judged like the student's own, the dialogue is marked
   ``guided`` and counted at the stage ``clarification_guided``.
5. **Correction dialogue.** The teacher, as user, answers the student's wrong answer of stage 3 with
   :func:`~clarifylab.methods.ts.prompts.correction_reply` (the missing information) and the student answers again.
6. **Recovery filter.** A dialogue is kept only when the student's final answer is correct (:class:`Scorer`:
   ``match=official``: H >= threshold; ``contains``: it names the gold answer and no distractor).

**Finalize** (atomic writes): by source table (``unit_hash(conversation_id, split_seed) < test_fraction`` -> test):
``train.jsonl`` / ``validation.jsonl`` hold the kept dialogues of ``train_on`` scenarios as Examples (a
clarification dialogue is a ``clarify`` Example: history = the ablated question, response = the student's
judged question, one Clarification (reply = the missing information, answer = the gold answer); a correction
dialogue is an ``answer`` Example whose history holds the student's wrong answer and the correction, response =
the gold answer); ``test.jsonl`` holds every verified ablated task of the test tables (the benchmark:
``meta.ts`` keeps the original question and context); ``clarification.jsonl`` / ``correction.jsonl`` hold every
kept dialogue; ``manifest.json`` the yield per stage and strategy (``counts.yield``), drops by reason, usage,
``wall_s`` (this invocation) and ``build_s`` (model time over every invocation of a resumed build: each record
of the log carries its share of its chunk's seconds; None for a log with records written before that field).

The default ``train_on: [clarification]``: with ``trainer.loss_on=all_assistant`` a correction dialogue would
also teach the student's wrong first answer (it is an assistant turn of the history).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.ablation_strategies import (STRATEGIES, Ablated, NeededInfo, Refusal, ablate, ablated_example,
                                                 accept_rewrite, check_strategies, identify_needed_info)
from clarifylab.data.builders.ambigsql_log import append_records, check_fingerprint, recover_log
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.data.splits import unit_hash
from clarifylab.data.table_tasks import TableTask, answer_distractors, load_tatqa_tasks, load_wtq_tasks, lookup_cells
from clarifylab.env.action_classifier import classify_response
from clarifylab.errors import ConfigError
from clarifylab.methods.ts.judge import parse_column, parse_yes, rule_targets
from clarifylab.methods.ts.prompts import (NOT_TARGETED_REPLY, PROMPT_VERSION, continue_messages, correction_reply,
                                           guided_question, identify_messages, judge_messages,
                                           rewrite_messages, student_answer_messages, student_clarify_messages)

log = logging.getLogger(__name__)

LOG_NAME = "progress.jsonl"
SCENARIOS = ("clarification", "correction")
MATCHES = ("official", "contains")
GUIDES = ("none", "rule")
STAGES = ("sources", "identified", "ablated", "student_fails", "clarification_asked", "clarification_guided",
          "clarification_targeted", "clarification_recovered", "correction_recovered")


class Scorer:
    """Whether a reply answers an Example correctly: ``match=official``: H of the task against the gold,
    thresholded (``training.task_success.success_threshold``); ``match=contains``: the reply names the gold and no
    distractor (:func:`~clarifylab.metrics.answer_mention.names_answer`; for models that answer in sentences)."""

    def __init__(self, task: str, paths: Mapping[str, Any] | None = None, match: str = "official") -> None:
        from clarifylab.metrics.task_heuristics import heuristic_for
        from clarifylab.training.task_success import success_threshold

        if match not in MATCHES:
            raise ConfigError(f"match={match!r}; choose from {list(MATCHES)}")
        self.task, self.match = task, match
        self.heuristic = heuristic_for(task, data_dir=(paths or {}).get("data_dir"))
        self.threshold = success_threshold(task)

    def correct(self, predictions: Sequence[str], examples: Sequence[Example],
                supplied: Sequence[str] | None = None) -> list[bool]:
        """One verdict per prediction; ``supplied``: per prediction, what the user told the model before it (a
        ``contains`` reply that copies it is no answer)."""
        from clarifylab.metrics.answer_mention import gold_alternatives, names_answer
        from clarifylab.metrics.task_heuristics import score_outcomes

        if not predictions:
            return []
        if self.match == "contains":
            told = list(supplied) if supplied is not None else [""] * len(examples)
            return [names_answer(p, gold_alternatives(e.goal, e.meta), e.meta.get("answer_distractors") or (),
                                 " ".join(t.content for t in e.history if t.role == "user"), given)
                    for p, e, given in zip(predictions, examples, told)]
        scores = score_outcomes(self.task, list(predictions), list(examples), [0] * len(examples), self.heuristic)
        return [s >= self.threshold for s in scores]


def with_distractors(task: TableTask) -> TableTask:
    """``task`` whose Example carries ``meta["answer_distractors"]`` (:func:`~clarifylab.data.table_tasks.
    answer_distractors`), inherited by its ablated Examples and dialogues."""
    meta = {**task.example.meta, "answer_distractors": answer_distractors(task)}
    return replace(task, example=replace(task.example, meta=meta))


def _complete(backend: ChatBackend, prompts: list[list[Message]], params: SamplingParams, role: str) -> list[str]:
    replies = backend.complete(prompts, params) if prompts else []
    if len(replies) != len(prompts):
        raise RuntimeError(f"{role} {getattr(backend, 'model_id', backend)!r} returned {len(replies)} replies for "
                           f"{len(prompts)} prompts")
    return [str(r) for r in replies]


def plan_tasks(tasks: Sequence[TableTask], max_sources: int | None, seed: int, order: str = "seeded") -> list[TableTask]:
    """The first ``max_sources`` tasks in a seeded permutation (``order=seeded``; a larger prefix extends a
    smaller one) or in file order (``file``)."""
    if order == "seeded":
        tasks = sorted(tasks, key=lambda t: unit_hash(t.id, seed, "ts-order"))
    elif order != "file":
        raise ConfigError(f"task.order={order!r}; choose seeded or file")
    return list(tasks if max_sources is None else tasks[:max_sources])


def identify(tasks: Sequence[TableTask], mode: str, teacher: ChatBackend | None, params: SamplingParams,
             seed: int) -> list[tuple[NeededInfo | Refusal, dict[str, Any]]]:
    """Stage 1 for a chunk: ``(needed info or refusal, log fields)`` per task (module docstring)."""
    rules = [identify_needed_info(t, seed) for t in tasks]
    if mode == "rule":
        return [(r, {"identified_by": "rule"}) for r in rules]
    if mode != "teacher":
        raise ConfigError(f"task.identify={mode!r}; choose teacher or rule")
    prompts = [identify_messages(list(t.table[0]), t.question, t.example.response) for t in tasks]
    replies = _complete(teacher, prompts, params, "teacher")
    out = []
    for task, rule, reply in zip(tasks, rules, replies):
        column = parse_column(reply, task.table[0])
        cells = [rc for rc in lookup_cells(task.table, task.lookup_values) if rc[1] == column]
        if isinstance(rule, NeededInfo) and column is not None and cells:
            needed = NeededInfo(column, cells[0][0], cells[0], rule.span, rule.span_kind, "teacher")
            out.append((needed, {"identified_by": "teacher", "teacher_identify": reply}))
        else:
            out.append((rule, {"identified_by": "rule", "teacher_identify": reply, "teacher_unverified": True}))
    return out


def _record(task: TableTask, strategy: str) -> dict[str, Any]:
    return {"id": f"{task.id}:{strategy}", "source_id": task.id, "strategy": strategy, "task": task.example.task,
            "conversation_id": task.example.meta.get("conversation_id"), "status": "dropped", "reason": None}


def process_chunk(tasks: Sequence[TableTask], strategies: Sequence[str], teacher: ChatBackend | None,
                  student: ChatBackend, scorer: Scorer, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One progress record per (task, strategy) of the chunk, in task-then-strategy order (module docstring)."""
    tparams = SamplingParams(max_new_tokens=int(options["teacher_max_new_tokens"]))
    sparams = SamplingParams(max_new_tokens=int(options["max_new_tokens"]))
    seed, mcc = int(options["seed"]), options["max_context_chars"]
    tasks = [with_distractors(t) for t in tasks]
    needed = identify(tasks, options["identify"], teacher, tparams, seed)
    # The student on the original questions (one call per task, shared by its strategies).
    originals = [t.example for t in tasks]
    original_answers = _complete(student, [student_answer_messages(e) for e in originals], sparams, "student")
    original_ok = scorer.correct(original_answers, originals)
    records: list[dict[str, Any]] = []
    items: list[tuple[dict[str, Any], Ablated]] = []
    rewrites: list[tuple[dict[str, Any], TableTask, NeededInfo]] = []
    for task, (info, fields), answer, ok in zip(tasks, needed, original_answers, original_ok):
        for strategy in strategies:
            record = {**_record(task, strategy), **fields, "original_answer": answer, "original_correct": ok}
            records.append(record)
            if isinstance(info, Refusal):
                record.update(stage="identify", reason=info.reason)
                continue
            if strategy == "question" and options["question_mode"] == "teacher":
                rewrites.append((record, task, info))
                continue
            result = ablate(task, strategy, info, seed, options["value_mode"])
            if isinstance(result, Refusal):
                record.update(stage="ablation", reason=result.reason)
            else:
                items.append((record, result))
    if rewrites:
        replies = _complete(teacher, [rewrite_messages(t.question, n.span or "") for _, t, n in rewrites], tparams,
                            "teacher")
        for (record, task, info), reply in zip(rewrites, replies):
            record["teacher_rewrite"] = reply
            result = accept_rewrite(task, info, reply)
            if isinstance(result, Refusal):
                record.update(stage="ablation", reason=result.reason)
            else:
                items.append((record, result))
    position = {record["id"]: i for i, record in enumerate(records)}
    items.sort(key=lambda pair: position[pair[0]["id"]])  # task-then-strategy order, teacher rewrites included
    examples = [ablated_example(a, mcc) for _, a in items]
    for (record, ablated), example in zip(items, examples):
        record.update(stage="ablated", removed=ablated.removed.to_dict(), example=example.to_dict(),
                      original_context=ablated.task.example.context)
    # Stage 3: the student-fails filter.
    answers = _complete(student, [student_answer_messages(e) for e in examples], sparams, "student")
    correct = scorer.correct(answers, examples)
    failing = []
    for (record, _), example, answer, ok in zip(items, examples, answers, correct):
        record.update(ablated_answer=answer, ablated_correct=ok)
        if ok:
            record["reason"] = "student_still_correct"
        elif options["require_original_correct"] and not record["original_correct"]:
            record["reason"] = "student_fails_original"
        else:
            record["stage"] = "student_fails"
            failing.append((record, example))
    if not failing:
        return records
    # Stage 4: clarification dialogues (a student that answers instead may be guided: clarify_guide=rule).
    prompts = [student_clarify_messages(e) for _, e in failing]
    firsts = _complete(student, prompts, sparams, "student")
    asked = []
    for i, ((record, _), first) in enumerate(zip(failing, firsts)):
        record["clarification"] = {"first": first, "asked": classify_response(first) is Action.CLARIFY}
        if record["clarification"]["asked"]:
            asked.append((i, first))
        elif options["clarify_guide"] == "rule":  # validated by generate_ts_curriculum
            record["clarification"].update(guided=True)
            asked.append((i, guided_question(record["removed"])))
    if options["judge"] == "teacher" and asked:
        verdicts = [parse_yes(r) for r in _complete(
            teacher, [judge_messages(failing[i][0]["removed"]["user_text"], q) for i, q in asked], tparams, "teacher")]
    elif options["judge"] in ("teacher", "rule"):
        verdicts = [rule_targets(failing[i][0]["removed"], q) for i, q in asked]
    else:
        raise ConfigError(f"task.judge={options['judge']!r}; choose teacher or rule")
    targeted = [(i, q) for (i, q), ok in zip(asked, verdicts) if ok]
    for (i, q), ok in zip(asked, verdicts):
        failing[i][0]["clarification"].update(question=q, targeted=ok)
    follow = [continue_messages(prompts[i], q, failing[i][0]["removed"]["user_text"]) for i, q in targeted]
    finals = _complete(student, follow, sparams, "student")
    recovered = scorer.correct(finals, [failing[i][1] for i, _ in targeted],
                               [failing[i][0]["removed"]["user_text"] for i, _ in targeted])
    for (i, _), final, ok in zip(targeted, finals, recovered):
        failing[i][0]["clarification"].update(user=failing[i][0]["removed"]["user_text"], final=final, recovered=ok)
    # Stage 5: correction dialogues.
    follow = [continue_messages(student_answer_messages(e), r["ablated_answer"], correction_reply(r["removed"]["user_text"]))
              for r, e in failing]
    finals = _complete(student, follow, sparams, "student")
    recovered = scorer.correct(finals, [e for _, e in failing], [r["removed"]["user_text"] for r, _ in failing])
    for (record, _), final, ok in zip(failing, finals, recovered):
        record["correction"] = {"user": correction_reply(record["removed"]["user_text"]), "final": final,
                                "recovered": ok}
        kept = [s for s in SCENARIOS if (record.get(s) or {}).get("recovered")]
        record.update(status="kept" if kept else "dropped", kept=kept,
                      reason=None if kept else "student_did_not_recover")
    return records


def dialogue_examples(record: Mapping[str, Any], split: str) -> dict[str, Example]:
    """``scenario -> Example`` of a record's kept dialogues (module docstring); ``{}`` for a dropped record."""
    if not record.get("kept"):
        return {}
    source = Example.from_dict(record["example"])
    out = {}
    meta = {**source.meta, "split": split}
    if "clarification" in record.get("kept", []):
        dialogue = record["clarification"]
        out["clarification"] = Example(
            id=f"{record['id']}:clarification", task=source.task, context=source.context, history=source.history,
            response=dialogue["question"], action=Action.CLARIFY, goal=source.goal,
            clarifications=[Clarification(reply=dialogue["user"], answer=source.response)],
            meta={**meta, "ts": {**meta["ts"], "scenario": "clarification", "guided": bool(dialogue.get("guided"))}})
    if "correction" in record.get("kept", []):
        history = [*source.history, Turn("assistant", record["ablated_answer"]), Turn("user", record["correction"]["user"])]
        out["correction"] = Example(
            id=f"{record['id']}:correction", task=source.task, context=source.context, history=history,
            response=source.response, action=Action.ANSWER, goal=source.goal,
            meta={**meta, "ts": {**meta["ts"], "scenario": "correction"}})
    return out


def benchmark_example(record: Mapping[str, Any]) -> Example:
    """The verified ablated task of a record, with its original question and context in ``meta.ts``."""
    example = Example.from_dict(record["example"])
    example.meta["ts"] = {**example.meta["ts"], "original_context": record["original_context"]}
    return example


def split_of(record: Mapping[str, Any], split_seed: int, test_fraction: float, validation_fraction: float) -> str:
    """test / validation / train by a hash of the source table (all of a table's questions in one split)."""
    value = unit_hash(str(record["conversation_id"]), split_seed, "ts-split")
    if value < test_fraction:
        return "test"
    return "validation" if value < test_fraction + validation_fraction else "train"


def yield_counts(records: Sequence[Mapping[str, Any]], strategies: Sequence[str], n_sources: int) -> dict[str, Any]:
    """Per strategy: the number of (question, strategy) items alive after each stage (:data:`STAGES`), and the
    drops by reason."""
    table: dict[str, dict[str, int]] = {}
    drops: dict[str, dict[str, int]] = {}
    for strategy in strategies:
        rs = [r for r in records if r["strategy"] == strategy]
        clar = [r.get("clarification") or {} for r in rs]
        table[strategy] = {
            "sources": n_sources, "identified": sum(r.get("stage") != "identify" for r in rs),
            "ablated": sum("example" in r for r in rs),
            "student_fails": sum(r.get("stage") == "student_fails" for r in rs),
            "clarification_asked": sum(bool(c.get("asked")) for c in clar),
            "clarification_guided": sum(bool(c.get("guided")) for c in clar),
            "clarification_targeted": sum(bool(c.get("targeted")) for c in clar),
            "clarification_recovered": sum(bool(c.get("recovered")) for c in clar),
            "correction_recovered": sum(bool((r.get("correction") or {}).get("recovered")) for r in rs)}
        drops[strategy] = dict(sorted(Counter(r["reason"] for r in rs if r.get("reason")).items()))
    return {"yield": table, "dropped": drops}


def _plain(node: Any) -> Any:
    from clarifylab.backends.teacher_nodes import plain

    return plain(node)


def load_source_tasks(dataset: Mapping[str, Any]) -> list[TableTask]:
    """The TableTasks of ``dataset`` (a conf/dataset node: ``tatqa`` or ``wtq``)."""
    name = dataset["name"]
    if name == "tatqa":
        return load_tatqa_tasks(dataset["path"], dataset["max_context_chars"])
    if name == "wtq":
        return load_wtq_tasks(dataset["dir"], dataset["tsv"], dataset["max_context_chars"])
    raise ConfigError(f"task.dataset={name!r}: the TS curriculum builds from tatqa or wtq "
                      "(dataset@task.dataset=tatqa|wtq)")


def generate_ts_curriculum(out_dir: str, dataset: Mapping[str, Any], ablation: Mapping[str, Any],
                           teacher: Mapping[str, Any] | None, student: Mapping[str, Any] | None,
                           paths: Mapping[str, Any], max_sources: int | None = 100, order: str = "seeded",
                           seed: int = 0, identify: str = "teacher", judge: str = "teacher",
                           require_original_correct: bool = True, match: str = "official", clarify_guide: str = "none",
                           train_on: Sequence[str] = ("clarification",),
                           batch_size: int = 8, max_new_tokens: int = 48, teacher_max_new_tokens: int = 24,
                           split_seed: int = 0, test_fraction: float = 0.3, validation_fraction: float = 0.1,
                           teacher_backend: ChatBackend | None = None,
                           student_backend: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=ts_curriculum``: plan, process (resumable), finalize (module docstring).

    Args:
        out_dir: holds ``progress.jsonl`` (+ ``.config.json``), the split files and ``manifest.json``.
        dataset: the source (conf/dataset tatqa or wtq; its ``max_context_chars`` bounds every context).
        ablation: conf/ablation node (``strategies``, ``value_mode``, ``question_mode``).
        teacher, student: backend nodes (conf/teacher; cached calls); ``teacher_backend`` / ``student_backend``
            (tests) override them.
        max_sources, order, seed: :func:`plan_tasks`; ``seed`` also seeds the strategies' choices.
        identify, judge: ``teacher`` | ``rule`` (stages 1 and 4).
        require_original_correct: stage 3's stricter filter.
        match: ``official`` (the task's H) | ``contains`` (the reply names the gold): :class:`Scorer`.
        clarify_guide: ``none`` | ``rule``: a student that answers in the clarification scenario is guided to ask
            :func:`~clarifylab.methods.ts.prompts.guided_question` (then judged, answered, filtered as any).
        train_on: scenarios whose kept dialogues go into train/validation.
        batch_size: source questions per chunk (batched calls, one fsynced append).
        max_new_tokens, teacher_max_new_tokens: greedy decoding budgets of the student and the teacher.
        split_seed, test_fraction, validation_fraction: :func:`split_of`.

    Returns:
        The manifest.
    """
    from clarifylab.backends.accounting import UsageMeter
    from clarifylab.backends.teacher_nodes import build_teacher
    from clarifylab.data.jsonl import write_examples
    from clarifylab.io import write_json

    started = time.time()
    dataset, ablation, paths = _plain(dataset), _plain(ablation), _plain(paths)
    strategies = check_strategies(ablation["strategies"])
    train_on = [str(s) for s in _plain(train_on)]
    if not set(train_on) <= set(SCENARIOS):
        raise ConfigError(f"task.train_on={train_on}; choose from {list(SCENARIOS)}")
    if match not in MATCHES or clarify_guide not in GUIDES:
        raise ConfigError(f"task.match={match!r} / task.clarify_guide={clarify_guide!r}: choose match from "
                          f"{list(MATCHES)} and clarify_guide from {list(GUIDES)}")
    needs_teacher = identify == "teacher" or judge == "teacher" or ablation["question_mode"] == "teacher"
    options = {"seed": seed, "identify": identify, "judge": judge, "require_original_correct": require_original_correct,
               "match": match, "clarify_guide": clarify_guide,
               "value_mode": ablation["value_mode"], "question_mode": ablation["question_mode"],
               "max_new_tokens": max_new_tokens, "teacher_max_new_tokens": teacher_max_new_tokens,
               "max_context_chars": dataset["max_context_chars"]}
    tasks = load_source_tasks(dataset)
    planned = plan_tasks(tasks, max_sources, seed, order)
    out = Path(out_dir)
    log_path = out / LOG_NAME
    records = recover_log(log_path)
    done = {r["source_id"] for r in records if r["strategy"] in strategies}
    fingerprint = {"prompt_version": PROMPT_VERSION, "dataset": {k: dataset.get(k) for k in ("name", "path", "dir", "tsv")},
                   "options": options, "strategies": strategies, "teacher": None, "student": None}
    check_fingerprint(log_path, fingerprint, ignore=("teacher", "student"))
    meter = UsageMeter()
    todo = [t for t in planned if t.id not in done]
    if todo:
        hint = "python generate.py task=ts_curriculum teacher@task.teacher=smollm2 teacher@task.student=smollm2"
        if student_backend is None:
            student_backend = build_teacher(student, paths["cache_dir"], meter, "student", hint)
        if teacher_backend is None and needs_teacher:
            teacher_backend = build_teacher(teacher, paths["cache_dir"], meter, "teacher", hint)
        check_fingerprint(log_path, {**fingerprint, "teacher": getattr(teacher_backend, "model_id", None),
                                     "student": student_backend.model_id})
        scorer = Scorer(planned[0].example.task, paths, match)
        from rich.progress import Progress

        with Progress(disable=not todo) as progress:
            bar = progress.add_task("ts curriculum", total=len(todo))
            for start in range(0, len(todo), batch_size):
                chunk, chunk_started = todo[start:start + batch_size], time.time()
                chunk_records = process_chunk(chunk, strategies, teacher_backend, student_backend, scorer, options)
                share = (time.time() - chunk_started) / max(len(chunk_records), 1)
                append_records(log_path, [{**r, "seconds": round(share, 3)} for r in chunk_records])
                progress.advance(bar, len(chunk))
        records = recover_log(log_path)
    planned_ids = {t.id for t in planned}
    records = [r for r in records if r["source_id"] in planned_ids and r["strategy"] in strategies]
    order_of = {t.id: i for i, t in enumerate(planned)}
    records.sort(key=lambda r: (order_of[r["source_id"]], strategies.index(r["strategy"])))
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    dialogues: dict[str, list[Example]] = {s: [] for s in SCENARIOS}
    for record in records:
        split = split_of(record, split_seed, test_fraction, validation_fraction)
        if split == "test" and "example" in record:
            splits["test"].append(benchmark_example(record))
        for scenario, example in dialogue_examples(record, split).items():
            dialogues[scenario].append(example)
            if split != "test" and scenario in train_on:
                splits[split].append(example)
    files = {}
    for name, examples in [*splits.items(), *dialogues.items()]:
        files[name] = str(out / f"{name}.jsonl")
        write_examples(files[name], examples)
    counts = {**yield_counts(records, strategies, len(planned)), "planned": len(planned), "source_items": len(tasks),
              "records": len(records), "splits": {k: len(v) for k, v in splits.items()},
              "dialogues": {k: len(v) for k, v in dialogues.items()},
              "student_original_correct": sum(r["original_correct"] for r in records if r["strategy"] == strategies[0])}
    manifest = {"task": "ts_curriculum", "source": dataset["name"], "counts": counts, "files": files,
                "progress_log": str(log_path), "params": {**options, "strategies": strategies, "max_sources": max_sources,
                                                           "order": order, "train_on": train_on,
                                                           "split_seed": split_seed, "test_fraction": test_fraction,
                                                           "validation_fraction": validation_fraction,
                                                           "batch_size": batch_size, "prompt_version": PROMPT_VERSION,
                                                           "teacher": getattr(teacher_backend, "model_id", None),
                                                           "student": getattr(student_backend, "model_id", None)},
                "usage": meter.summary(), "wall_s": round(time.time() - started, 1),
                "build_s": round(sum(r["seconds"] for r in records), 1) if all("seconds" in r for r in records) else None}
    write_json(out / "manifest.json", manifest)
    log.info("ts_curriculum %s: yield %s", dataset["name"], counts["yield"])
    return {"out_dir": str(out), "yield": counts["yield"], "splits": counts["splits"]}
