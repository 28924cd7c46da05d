"""AmbigSQL (ACT §4.1.3, App. C.1): ambiguous conversational text-to-SQL built from Spider.

``python generate.py task=ambigsql teacher@task.teacher=<backend>`` runs three stages:

1. **Plan.** Read the Spider question files (``sources``) and tables.json; skip every request whose
   database file is missing (counted per database: wta_1, baseball_1 and soccer_1 here); order the rest
   (``order: seeded``: a seeded permutation of ids, so any ``max_items`` prefix spreads over databases and
   a larger ``max_items`` extends a smaller one; ``file``: file order) and keep the first ``max_items``.
2. **Process**, in fixed chunks of ``batch_size`` planned requests. Per request: the gold SQL must execute
   read-only on its database (:func:`~clarifylab.metrics.sql_execution.run_read_only_query`), else it is
   dropped as ``gold_sql_fails`` without a teacher call; the ambiguity kind is drawn
   (:func:`~clarifylab.data.builders.ambigsql_kinds.choose_kind`); the teacher writes the ambiguous request from
   the schema (cut to ``max_schema_chars``, the query's tables first), the SQL and the clear request, and the
   clarifying question (``mode``: two calls or one, :mod:`~clarifylab.data.builders.ambigsql_prompts`), batched
   per chunk through the persistent call cache; the outputs are judged (drop reasons in
   :mod:`~clarifylab.data.builders.ambigsql_parse`).
   Each chunk's records are appended to ``<out_dir>/progress.jsonl`` and fsynced
   (:mod:`~clarifylab.data.builders.ambigsql_log`): a killed build rerun with the same settings skips the
   logged ids and redoes the rest, so its result equals an uninterrupted run's.
3. **Finalize.** Every kept request becomes two Examples (task ``ambigsql``), which land in the same split:

   - clarify: history ``[user: ambiguous request]``, response = the clarifying question, one
     Clarification (reply = the original request, answer = the gold SQL), goal ``[gold SQL]``;
   - answer: history ``[user: original request]``, response = goal = ``[gold SQL]``.

   So every split is 50/50 clarify/answer by construction. ``context`` is the linearized schema (cut to
   ``context_max_chars``); ``meta`` holds ``db_id`` (what the execution-match heuristic needs to find
   ``<data_dir>/spider/database/<db_id>/<db_id>.sqlite``), ``ambiguity_type``, ``original_question``,
   ``ambiguous_request``, ``query``, ``source``, ``source_index``, ``conversation_id`` (the pair id),
   ``split``, ``variant`` (ambiguous | original) and ``gold_rows``. Splits (``split_by``): ``db`` puts
   all pairs of a database in one split (no schema shared between train and test), ``item`` decides per
   pair; either way a unit goes to test when ``unit_hash(unit, split_seed) < test_fraction``, else to
   validation below ``test_fraction + validation_fraction``, else to train. The threshold (not a ranked
   cut) keeps every pair's split fixed as the build grows, at the price of approximate split sizes.
   ``train/validation/test.jsonl`` and then ``manifest.json`` are written atomically.

Gold SQL that executes but returns no rows is kept (its row count is in ``meta["gold_rows"]``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.teacher_nodes import build_teacher, plain
from clarifylab.data.builders.ambigsql_kinds import AmbiguityKind, choose_kind, query_tables
from clarifylab.data.builders.ambigsql_log import append_records, check_fingerprint, recover_log
from clarifylab.data.builders.ambigsql_parse import judge_question, judge_request, judge_rewrite, parse_line
from clarifylab.data.builders.ambigsql_prompts import (
    PROMPT_VERSION,
    question_messages,
    request_messages,
    rewrite_messages,
)
from clarifylab.data.jsonl import write_examples
from clarifylab.data.loaders.spider import (
    SpiderRequest,
    SpiderSchema,
    check_requests_have_schemas,
    linearize_schema,
    read_spider_requests,
    read_spider_schemas,
    spider_database_path,
)
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.data.splits import seeded_order, unit_hash
from clarifylab.errors import ConfigError
from clarifylab.io import write_json
from clarifylab.metrics.sql_execution import (
    QueryFailedError,
    QueryRejectedError,
    parse_read_only_query,
    run_read_only_query,
)

log = logging.getLogger(__name__)

TASK = "ambigsql"
SPLITS = ("train", "validation", "test")
LOG_NAME = "progress.jsonl"


@dataclass(frozen=True)
class RewriteOptions:
    """How one request is turned into a teacher prompt and how the reply is judged.

    Attributes:
        mode: ``two_step`` (one teacher call for the request, one for the question) or ``joint`` (one call,
            two labelled lines); see :mod:`~clarifylab.data.builders.ambigsql_prompts`.
        seed: seeds the ambiguity kind per request.
        presentation_rate: see :func:`~clarifylab.data.builders.ambigsql_kinds.choose_kind`.
        shots: demonstrations of the kind per prompt (0..3).
        max_schema_chars: bound on the schema text in the teacher's prompt (``None`` = whole schema).
        require_question_mark: drop clarifying questions without ``?`` (``not_a_question``).
        gold_timeout_s: wall-clock limit for executing a gold query, seconds.
    """

    mode: str = "two_step"
    seed: int = 0
    presentation_rate: float = 1.0
    shots: int = 1
    max_schema_chars: int | None = 400
    require_question_mark: bool = True
    gold_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("two_step", "joint"):
            raise ConfigError(f"task.mode must be 'two_step' or 'joint', got {self.mode!r}")
        if not 0 <= self.presentation_rate <= 1:
            raise ConfigError(f"task.presentation_rate must be in [0, 1], got {self.presentation_rate}")


# ------------------------------------------------------------------------------------------------------ plan


def plan_requests(requests: Sequence[SpiderRequest], spider_dir: str | Path, order: str = "seeded", seed: int = 0,
                  max_items: int | None = None) -> tuple[list[SpiderRequest], Counter[str]]:
    """The requests to process, and ``db_id -> count`` of those skipped because their database is missing.

    Args:
        requests: every request of the sources, in file order.
        spider_dir: the Spider folder (``database/<db_id>/<db_id>.sqlite`` under it).
        order: ``seeded`` (by ``unit_hash(id, seed, "ambigsql/order")``; prefixes are nested across
            ``max_items``) or ``file``.
        seed: seeds the order.
        max_items: keep the first N requests on present databases (``None`` = all).
    """
    if order not in ("seeded", "file"):
        raise ConfigError(f"task.order must be 'seeded' or 'file', got {order!r}")
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
        raise ConfigError(f"task.max_items must be null or a positive integer, got {max_items!r}")
    present: dict[str, bool] = {}
    missing: Counter[str] = Counter()
    kept = []
    for request in requests:
        if request.db_id not in present:
            present[request.db_id] = spider_database_path(spider_dir, request.db_id).is_file()
        if present[request.db_id]:
            kept.append(request)
        else:
            missing[request.db_id] += 1
    if order == "seeded":
        rank = {key: i for i, key in enumerate(seeded_order([r.id for r in kept], seed, "ambigsql/order"))}
        kept.sort(key=lambda r: rank[r.id])
    return kept[:max_items] if max_items else kept, missing


# ------------------------------------------------------------------------------------------------------ process


def check_gold(request: SpiderRequest, spider_dir: str | Path, timeout_s: float = 10.0) -> tuple[int | None, str]:
    """``(row count, "")`` when the gold SQL is one read-only query that executes on its database, else
    ``(None, why)``."""
    try:
        parse_read_only_query(request.query)
        rows = run_read_only_query(request.query, spider_database_path(spider_dir, request.db_id), timeout_s)
    except (QueryRejectedError, QueryFailedError) as error:
        return None, str(error)
    return len(rows), ""


def base_record(request: SpiderRequest) -> dict[str, Any]:
    """The fields every progress record carries."""
    return {"id": request.id, "source": request.source, "index": request.index, "db_id": request.db_id,
            "original_question": request.question, "query": request.query}


def _complete(teacher: ChatBackend, prompts: list[list[Message]], params: SamplingParams) -> list[str]:
    """One batched teacher call (none for no prompts), checked to return one reply per prompt."""
    replies = teacher.complete(prompts, params) if prompts else []
    if len(replies) != len(prompts):
        raise RuntimeError(f"teacher {getattr(teacher, 'model_id', teacher)!r} returned {len(replies)} replies for "
                           f"{len(prompts)} prompts")
    return replies


def rewrite_pending(pending: Sequence[tuple[dict[str, Any], str]], teacher: ChatBackend, params: SamplingParams,
                    options: RewriteOptions) -> None:
    """Ask the teacher for the ambiguous request and clarifying question of each ``(record, schema text)`` and
    complete the records in place (``status``, ``reason``, ``teacher_outputs``, ``ambiguous_request``,
    ``clarifying_question``). ``joint``: one call for all; ``two_step``: one call for the requests, one for the
    questions of the usable requests (see :mod:`~clarifylab.data.builders.ambigsql_prompts`)."""
    kinds = [AmbiguityKind(record["kind"]) for record, _ in pending]
    if options.mode == "joint":
        replies = _complete(teacher, [rewrite_messages(schema, r["query"], r["original_question"], kind, options.shots)
                                      for (r, schema), kind in zip(pending, kinds)], params)
        for (record, _), reply in zip(pending, replies):
            rewrite = judge_rewrite(reply, record["original_question"], options.require_question_mark)
            record.update(teacher_outputs=[reply], ambiguous_request=rewrite.request,
                          clarifying_question=rewrite.question, reason=rewrite.reason)
    else:
        replies = _complete(teacher, [request_messages(schema, r["query"], r["original_question"], kind, options.shots)
                                      for (r, schema), kind in zip(pending, kinds)], params)
        asking = []
        for (record, _), kind, reply in zip(pending, kinds, replies):
            request = parse_line(reply)
            record.update(teacher_outputs=[reply], ambiguous_request=request, clarifying_question=None,
                          reason=judge_request(request, record["original_question"]))
            if record["reason"] is None:
                asking.append((record, kind))
        questions = _complete(teacher, [question_messages(r["original_question"], r["ambiguous_request"], kind,
                                                          options.shots) for r, kind in asking], params)
        for (record, _), reply in zip(asking, questions):
            question = parse_line(reply)
            record["teacher_outputs"].append(reply)
            record.update(clarifying_question=question,
                          reason=judge_question(question, record["ambiguous_request"], record["original_question"],
                                                options.require_question_mark))
    for record, _ in pending:
        record["status"] = "kept" if record["reason"] is None else "dropped"


def process_chunk(chunk: Sequence[SpiderRequest], teacher: ChatBackend, params: SamplingParams,
                  schemas: Mapping[str, SpiderSchema], spider_dir: str | Path,
                  options: RewriteOptions) -> list[dict[str, Any]]:
    """One progress record per request of ``chunk``, in order; the teacher is called (batched) only for the
    requests whose gold SQL executes.

    A record is :func:`base_record` plus ``status`` (``kept`` | ``dropped``) and ``reason`` (None, or
    ``gold_sql_fails`` with ``detail``, or one of :data:`~clarifylab.data.builders.ambigsql_parse.DROP_REASONS`)
    and, past the gold check, ``gold_rows``, ``kind``, ``teacher_outputs`` (raw replies),
    ``ambiguous_request`` and ``clarifying_question`` (as parsed; None where not reached).
    """
    records: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], str]] = []
    for request in chunk:
        record = base_record(request)
        rows, why = check_gold(request, spider_dir, options.gold_timeout_s)
        if rows is None:
            record.update(status="dropped", reason="gold_sql_fails", detail=why)
        else:
            kind = choose_kind(request.id, request.query, options.seed, options.presentation_rate)
            record.update(gold_rows=rows, kind=kind.value)
            schema = linearize_schema(schemas[request.db_id], options.max_schema_chars, query_tables(request.query))
            pending.append((record, schema))
        records.append(record)
    rewrite_pending(pending, teacher, params, options)
    return records


def process_requests(planned: Sequence[SpiderRequest], done: set[str], teacher: ChatBackend, params: SamplingParams,
                     schemas: Mapping[str, SpiderSchema], spider_dir: str | Path, options: RewriteOptions,
                     log_path: str | Path, batch_size: int = 8) -> int:
    """Process every planned request not in ``done``, appending each chunk's records to ``log_path``.

    Chunks are fixed slices of ``planned`` (``planned[0:batch_size]``, ...) whatever was done before, so a
    resumed run sends the teacher the same batches as an uninterrupted one. Logs progress per chunk.

    Returns:
        The number of requests processed now.
    """
    if batch_size < 1:
        raise ConfigError(f"task.batch_size must be >= 1, got {batch_size}")
    todo = sum(r.id not in done for r in planned)
    if todo < len(planned):
        log.info("ambigsql: resuming: %d of %d planned requests are already in %s", len(planned) - todo,
                 len(planned), log_path)
    started, processed, outcomes = time.monotonic(), 0, Counter()
    for start in range(0, len(planned), batch_size):
        chunk = [r for r in planned[start:start + batch_size] if r.id not in done]
        if not chunk:
            continue
        records = process_chunk(chunk, teacher, params, schemas, spider_dir, options)
        append_records(log_path, records)
        done.update(r.id for r in chunk)
        processed += len(chunk)
        outcomes.update(record["reason"] or "kept" for record in records)
        elapsed = time.monotonic() - started
        rate = processed / elapsed if elapsed > 0 else 0.0
        eta = (todo - processed) / rate if rate else 0.0
        log.info("ambigsql: %d/%d requests (%s) %.2f req/s, ETA %.0f s", processed, todo,
                 ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), rate, eta)
    return processed


# ------------------------------------------------------------------------------------------------------ finalize


def split_of(record: Mapping[str, Any], split_by: str = "db", seed: int = 0, validation_fraction: float = 0.1,
             test_fraction: float = 0.2) -> str:
    """The split of a kept record's pair (module docstring, stage 3): by its ``db_id`` or by its ``id``."""
    if split_by not in ("db", "item"):
        raise ConfigError(f"task.split_by must be 'db' or 'item', got {split_by!r}")
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction > 1:
        raise ConfigError(f"task.validation_fraction ({validation_fraction}) and task.test_fraction "
                          f"({test_fraction}) must be >= 0 and sum to at most 1")
    u = unit_hash(record["db_id"] if split_by == "db" else record["id"], seed, "ambigsql/split")
    if u < test_fraction:
        return "test"
    return "validation" if u < test_fraction + validation_fraction else "train"


def pair_examples(record: Mapping[str, Any], context: str, split: str) -> tuple[Example, Example]:
    """The (clarify, answer) Examples of a kept progress record (module docstring, stage 3)."""
    query, original, ambiguous = record["query"], record["original_question"], record["ambiguous_request"]
    meta = {"db_id": record["db_id"], "ambiguity_type": record["kind"], "original_question": original,
            "ambiguous_request": ambiguous, "query": query, "source": record["source"],
            "source_index": record["index"], "conversation_id": record["id"], "split": split,
            "gold_rows": record.get("gold_rows")}
    clarify = Example(id=f"{record['id']}-clarify", task=TASK, context=context,
                      history=[Turn("user", ambiguous)], response=record["clarifying_question"],
                      action=Action.CLARIFY, goal=[query], clarifications=[Clarification(original, query)],
                      meta={**meta, "variant": "ambiguous"})
    answer = Example(id=f"{record['id']}-answer", task=TASK, context=context, history=[Turn("user", original)],
                     response=query, action=Action.ANSWER, goal=[query], meta={**meta, "variant": "original"})
    return clarify, answer


def build_splits(records: Sequence[Mapping[str, Any]], schemas: Mapping[str, SpiderSchema],
                 context_max_chars: int | None = None, split_by: str = "db", split_seed: int = 0,
                 validation_fraction: float = 0.1, test_fraction: float = 0.2) -> dict[str, list[Example]]:
    """``split -> Examples`` from progress records (in the given order; only ``kept`` ones), each pair's
    clarify Example followed by its answer Example."""
    out: dict[str, list[Example]] = {split: [] for split in SPLITS}
    contexts: dict[str, str] = {}
    for record in records:
        if record.get("status") != "kept":
            continue
        db_id = record["db_id"]
        if db_id not in contexts:
            contexts[db_id] = linearize_schema(schemas[db_id], context_max_chars)
        split = split_of(record, split_by, split_seed, validation_fraction, test_fraction)
        out[split].extend(pair_examples(record, contexts[db_id], split))
    return out


def build_counts(records: Sequence[Mapping[str, Any]], missing: Counter[str], n_sources: int, n_planned: int,
                 splits: Mapping[str, Sequence[Example]]) -> dict[str, Any]:
    """The manifest's counts: ``source_items``, ``missing_db_skipped`` (+ ``missing_db_by_db``),
    ``planned``, ``processed``, ``executes`` (gold SQL ran), ``kept``, ``dropped`` (reason -> n),
    ``kinds`` (kind -> kept pairs), and per split ``pairs`` / ``clarify`` / ``answer`` / ``databases``."""
    statuses = Counter(r["status"] for r in records)
    return {
        "source_items": n_sources, "missing_db_skipped": sum(missing.values()),
        "missing_db_by_db": dict(sorted(missing.items())), "planned": n_planned, "processed": len(records),
        "executes": sum(r.get("reason") != "gold_sql_fails" for r in records), "kept": statuses["kept"],
        "dropped": dict(sorted(Counter(r["reason"] for r in records if r["status"] != "kept").items())),
        "kinds": dict(sorted(Counter(r["kind"] for r in records if r["status"] == "kept").items())),
        "splits": {split: {"pairs": len(examples) // 2,
                           "clarify": sum(e.action is Action.CLARIFY for e in examples),
                           "answer": sum(e.action is Action.ANSWER for e in examples),
                           "databases": len({e.meta["db_id"] for e in examples})}
                   for split, examples in splits.items()},
    }


# ------------------------------------------------------------------------------------------------------ entry point


def read_sources(spider_dir: str | Path, sources: Sequence[str]) -> tuple[list[SpiderRequest], dict[str, SpiderSchema]]:
    """Requests of every source file (in the given order) and the schemas, checked against each other."""
    if not sources:
        raise ConfigError("task.sources is empty: name Spider question files, e.g. [dev.json]")
    schemas = read_spider_schemas(Path(spider_dir) / "tables.json")
    requests = [r for source in sources for r in read_spider_requests(Path(spider_dir) / source)]
    check_requests_have_schemas(requests, schemas)
    if len({r.id for r in requests}) != len(requests):
        raise ConfigError(f"task.sources={list(sources)} names a file twice (request ids repeat)")
    return requests, schemas


def generate_ambigsql(out_dir: str, spider_dir: str, teacher: Mapping[str, Any] | None, paths: Mapping[str, Any],
                      sources: Sequence[str] = ("train_spider_syn.json", "dev.json"), mode: str = "two_step",
                      order: str = "seeded",
                      max_items: int | None = None, seed: int = 0, presentation_rate: float = 1.0, shots: int = 1,
                      max_schema_chars: int | None = 400, context_max_chars: int | None = None,
                      require_question_mark: bool = True, gold_timeout_s: float = 10.0, batch_size: int = 8,
                      max_new_tokens: int = 48, temperature: float = 0.0, top_p: float = 1.0, split_by: str = "db",
                      split_seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.2,
                      generator: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=ambigsql``: plan, process (resumable), finalize (module docstring).

    Args:
        out_dir: holds ``progress.jsonl`` (+ ``.config.json``), the split files and ``manifest.json``.
        spider_dir: the native Spider folder (read-only).
        teacher: the teacher backend node (conf/teacher; its call cache makes reruns free).
        paths: conf/paths (``cache_dir``).
        sources: question files under ``spider_dir``; order, max_items, seed: see :func:`plan_requests`.
        mode, presentation_rate, shots, max_schema_chars, require_question_mark, gold_timeout_s: see
            :class:`RewriteOptions` (``seed`` seeds the kinds too).
        context_max_chars: bound on each Example's schema context (``None`` = whole schema).
        batch_size: requests per chunk (one teacher call and one fsynced append each).
        max_new_tokens, temperature, top_p: the teacher's decoding per call (0 = greedy).
        split_by, split_seed, validation_fraction, test_fraction: see :func:`split_of`.
        generator: an already-built teacher (tests); overrides ``teacher``.

    Returns:
        The manifest (``counts``, ``files``, ``params``, ``usage``).
    """
    paths = plain(paths)
    sources = list(plain(sources))
    options = RewriteOptions(mode=mode, seed=seed, presentation_rate=presentation_rate, shots=shots,
                             max_schema_chars=max_schema_chars, require_question_mark=require_question_mark,
                             gold_timeout_s=gold_timeout_s)
    requests, schemas = read_sources(spider_dir, sources)
    planned, missing = plan_requests(requests, spider_dir, order, seed, max_items)
    if missing:
        log.warning("ambigsql: skipped %d requests whose database file is missing under %s/database: %s",
                    sum(missing.values()), spider_dir, dict(sorted(missing.items())))
    out = Path(out_dir)
    log_path = out / LOG_NAME
    records = recover_log(log_path)
    done = {r["id"] for r in records}
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=None if temperature == 0 else seed)
    fingerprint = {"prompt_version": PROMPT_VERSION, "sources": sources, "options": asdict(options),
                   "sampling": params.to_dict(), "teacher": getattr(generator, "model_id", None)}
    # Checked before a teacher is loaded (its id aside), and again with its id once it is built. With nothing
    # left to process no teacher is built: logged records are reused if every other setting agrees.
    check_fingerprint(log_path, fingerprint, ignore=("teacher",))
    meter = None
    if any(r.id not in done for r in planned) and generator is None:
        meter = UsageMeter()
        generator = build_teacher(teacher, paths["cache_dir"], meter, "teacher",
                                  "python generate.py task=ambigsql teacher@task.teacher=smollm2")
    model_id = getattr(generator, "model_id", None)
    if generator is not None:
        check_fingerprint(log_path, {**fingerprint, "teacher": model_id})
        process_requests(planned, done, generator, params, schemas, spider_dir, options, log_path, batch_size)
        records = recover_log(log_path)

    by_id = {r["id"]: r for r in records}
    planned_records = [by_id[r.id] for r in planned if r.id in by_id]
    splits = build_splits(planned_records, schemas, context_max_chars, split_by, split_seed, validation_fraction,
                          test_fraction)
    files = {}
    for split, examples in splits.items():
        files[split] = str(out / f"{split}.jsonl")
        write_examples(files[split], examples)
    counts = build_counts(planned_records, missing, len(requests), len(planned), splits)
    counts["logged_outside_plan"] = len(by_id) - len(planned_records)
    manifest: dict[str, Any] = {
        "task": TASK, "counts": counts, "files": files, "progress_log": str(log_path),
        "params": {"spider_dir": str(spider_dir), "sources": sources, "mode": mode, "order": order,
                   "max_items": max_items, "seed": seed, "presentation_rate": presentation_rate, "shots": shots,
                   "max_schema_chars": max_schema_chars, "context_max_chars": context_max_chars,
                   "require_question_mark": require_question_mark, "batch_size": batch_size,
                   "sampling": params.to_dict(), "split_by": split_by, "split_seed": split_seed,
                   "validation_fraction": validation_fraction, "test_fraction": test_fraction,
                   "prompt_version": PROMPT_VERSION, "teacher": model_id}}
    if meter is not None:
        manifest["usage"] = meter.summary()
    write_json(out / "manifest.json", manifest)
    log.info("ambigsql: %s -> %s", {k: counts[k] for k in ("planned", "processed", "executes", "kept", "dropped")},
             out)
    return manifest
