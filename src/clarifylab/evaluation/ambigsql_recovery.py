"""AmbigSQL recovery check (ACT App. C.2, Table A14): does clarification recover the gold SQL?

For every clarify Example of a build (one per kept pair), a backend writes SQL twice, each time told to
reply with one SQL query:

- **ambiguous only**: ``[system: instruction + schema, user: ambiguous request]``;
- **with clarification**: ``[system, user: ambiguous request, assistant: gold clarifying question,
  user: the clarification reply (the original request)]``.

Each reply's SQL (:func:`~clarifylab.metrics.task_heuristics.extract_sql`) is scored by execution match
against the gold SQL on ``<spider_dir>/database/<db_id>/<db_id>.sqlite``. ACT reports 28.5 -> 68.7
(Gemini Pro) and 31.2 -> 77.0 (Gemini Ultra) on its test set: a large gap means the ambiguous requests
really lack what the SQL needs.

``python generate.py task=ambigsql_recovery [teacher@task.backend=openai task.backend.model=...]
[task.policy_dir=<train.py policy>]`` writes ``{n, ambiguous_only, with_clarification, gap, by_kind,
...}`` to ``task.out_path`` and each reply with its score to ``<out_path stem>.predictions.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.factory import build_backend
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.data.jsonl import write_records
from clarifylab.data.loaders.spider import load_ambigsql_split, spider_database_path
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.evaluation.components import policy_model_id
from clarifylab.io import write_json
from clarifylab.metrics.sql_execution import compare_execution
from clarifylab.metrics.task_heuristics import extract_sql
from clarifylab.models import load_policy

log = logging.getLogger(__name__)

RECOVERY_INSTRUCTION = ("You translate a user's request into SQL for the SQLite database whose schema is given "
                        "below. Reply with one SQLite query that starts with SELECT, and nothing else.")


def recovery_prompts(example: Example, instruction: str = RECOVERY_INSTRUCTION) -> tuple[list[Message], list[Message]]:
    """``(ambiguous only, with clarification)`` conversations for one clarify Example (module docstring).

    Raises:
        DataFormatError: ``example`` is not a clarify Example with a clarification.
    """
    if example.action is not Action.CLARIFY or not example.clarifications:
        raise DataFormatError(f"example {example.id!r}: the recovery check needs clarify Examples with a "
                              f"clarification (an AmbigSQL build's '-clarify' Examples)")
    system: Message = {"role": "system", "content": f"{instruction}\n\n{example.context}".strip()}
    history = [{"role": t.role, "content": t.content} for t in example.history]
    clarified = history + [{"role": "assistant", "content": example.response},
                           {"role": "user", "content": example.clarifications[0].reply}]
    return [system, *history], [system, *clarified]


def recovery_rates(examples: Sequence[Example], backend: ChatBackend, params: SamplingParams,
                   spider_dir: str | Path, timeout_s: float = 5.0,
                   instruction: str = RECOVERY_INSTRUCTION) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Execution match without and with the clarification turns, in ONE backend call for both conditions.

    Args:
        examples: clarify Examples (``meta["db_id"]``, ``goal[0]`` = gold SQL, ``meta["ambiguity_type"]``).
        backend: the model that writes SQL.
        params: its decoding.
        spider_dir: the Spider folder holding ``database/``.
        timeout_s: per-query execution limit.
        instruction: the system instruction (schema appended).

    Returns:
        ``(summary, rows)``: summary ``{"n", "ambiguous_only", "with_clarification", "gap", "by_kind"}``
        (rates in [0, 1]; ``by_kind`` the same per ambiguity kind); one row per example with both replies,
        their extracted SQL, scores and reasons.
    """
    prompts = [prompt for example in examples for prompt in recovery_prompts(example, instruction)]
    replies = backend.complete(prompts, params) if prompts else []
    if len(replies) != len(prompts):
        raise RuntimeError(f"backend {getattr(backend, 'model_id', backend)!r} returned {len(replies)} replies for "
                           f"{len(prompts)} prompts")
    rows = []
    for i, example in enumerate(examples):
        db_path = spider_database_path(spider_dir, str(example.meta["db_id"]))
        row: dict[str, Any] = {"id": example.id, "db_id": example.meta["db_id"],
                               "kind": example.meta.get("ambiguity_type"), "gold": example.goal[0]}
        for condition, reply in zip(("ambiguous_only", "with_clarification"), replies[2 * i:2 * i + 2]):
            sql = extract_sql(reply)
            outcome = compare_execution(sql, example.goal[0], db_path, timeout_s=timeout_s)
            row[condition] = {"reply": reply, "sql": sql, "score": outcome.score, "reason": outcome.reason}
        rows.append(row)
    return summarize(rows), rows


def _rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    ambiguous = sum(r["ambiguous_only"]["score"] for r in rows) / n if n else 0.0
    clarified = sum(r["with_clarification"]["score"] for r in rows) / n if n else 0.0
    return {"n": n, "ambiguous_only": ambiguous, "with_clarification": clarified, "gap": clarified - ambiguous}


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates over all rows and per ``kind`` (see :func:`recovery_rates`)."""
    kinds = sorted({str(r["kind"]) for r in rows})
    return {**_rates(rows), "by_kind": {kind: _rates([r for r in rows if str(r["kind"]) == kind]) for kind in kinds}}


def _build_backend(backend: Mapping[str, Any] | None, policy_dir: str | None, cache_dir: str,
                   batch_size: int) -> ChatBackend:
    """The SQL writer: a saved train.py policy when ``policy_dir`` is set, else the ``backend`` node."""
    if policy_dir:
        if not Path(policy_dir).is_dir():
            raise ConfigError(f"task.policy_dir={policy_dir!r} does not exist: pass the `policy` folder of a train.py "
                              f"run")
        model, tokenizer, _ = load_policy(policy_dir, cache_dir)
        return TransformersBackend(model, tokenizer, batch_size=batch_size, model_id=policy_model_id(policy_dir))
    if not isinstance(backend, Mapping) or "kind" not in backend:
        raise ConfigError("task=ambigsql_recovery needs a model: a backend node (e.g. teacher@task.backend=smollm2 "
                          f"or openai) or task.policy_dir; got backend={backend!r}")

    return build_backend(backend, cache_dir)


def run_recovery_check(out_path: str, build_dir: str, spider_dir: str, paths: Mapping[str, Any],
                       backend: Mapping[str, Any] | None = None, policy_dir: str | None = None,
                       splits: Sequence[str] = ("test",), max_pairs: int | None = None, max_new_tokens: int = 128,
                       batch_size: int = 8, timeout_s: float = 5.0, instruction: str | None = None,
                       model: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=ambigsql_recovery``: score a backend on a build's clarify Examples.

    Args:
        out_path: the JSON report (written atomically; predictions go beside it).
        build_dir: an AmbigSQL build (``task=ambigsql``'s ``out_dir``).
        spider_dir: the Spider folder with ``database/``.
        paths: conf/paths (``cache_dir``).
        backend: a backend node (conf/teacher/*.yaml); ignored when ``policy_dir`` is set.
        policy_dir: a policy saved by train.py.
        splits: which splits of the build to score.
        max_pairs: the first N clarify Examples (over ``splits`` in order); ``None`` = all.
        max_new_tokens: decoding budget per SQL reply (greedy).
        batch_size: conversations per generate call for a ``policy_dir`` model.
        timeout_s: per-query execution limit.
        instruction: overrides :data:`RECOVERY_INSTRUCTION`.
        model: an already-built backend (tests); overrides ``backend`` and ``policy_dir``.

    Returns:
        The report: the summary of :func:`recovery_rates` plus ``backend``, ``splits``, ``build_dir``.
    """
    if OmegaConf.is_config(backend):
        backend = OmegaConf.to_container(backend, resolve=True)
    splits = list(splits)
    examples = [e for split in splits for e in load_ambigsql_split(build_dir, split) if e.action is Action.CLARIFY]
    examples = examples[:max_pairs] if max_pairs else examples
    if not examples:
        raise ConfigError(f"no clarify Examples in splits {splits} of {build_dir}: build more pairs or choose other "
                          f"task.splits")
    meter = UsageMeter()
    writer = model if model is not None else _build_backend(backend, policy_dir, paths["cache_dir"], batch_size)
    writer = meter.track("policy", writer)
    summary, rows = recovery_rates(examples, writer, SamplingParams(max_new_tokens=max_new_tokens), spider_dir,
                                   timeout_s, instruction or RECOVERY_INSTRUCTION)
    report = {**summary, "backend": writer.model_id, "splits": splits, "build_dir": str(build_dir),
              "usage": meter.summary()}
    out = Path(out_path)
    write_records(out.with_name(out.stem + ".predictions.jsonl"), rows)
    write_json(out, report)
    log.info("ambigsql recovery (%s, %d pairs): execution match %.3f ambiguous only -> %.3f with clarification",
             writer.model_id, summary["n"], summary["ambiguous_only"], summary["with_clarification"])
    return report
