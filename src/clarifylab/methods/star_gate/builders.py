"""STaR-GATE data builders (``generate.py``): personas and oracle answers, so new splits can be built with any model.

- ``task=stargate_personas`` (:func:`generate_stargate_personas`): a teacher writes ``n_personas`` new persona
  descriptions per split, each few-shot prompted with two PRODIGy characters drawn at random (seeded per persona),
  sampled at ``temperature`` (paper-style diversity: 1.4 by default). Writes ``<out_dir>/<split>.json`` (descriptions)
  and ``<split>_NAMES.json`` (the name on each first line) — the native layout, read with
  ``dataset.personas_dir=<out_dir>``.
- ``task=stargate_oracle`` (:func:`generate_stargate_oracle`): the oracle sees the persona and answers the user's
  first turn (``max_new_tokens`` 300, greedy). Writes ``<out_dir>/<split>.json`` keyed ``"prompt-i persona-j"`` (the
  native gold-responses layout), read with ``dataset.oracle_dir=<out_dir>``.

Both are resumable like the AmbigSQL build (``data/builders/ambigsql_log.py``): every chunk's records are appended to
``<out_dir>/<split>.<kind>.progress.jsonl`` and fsynced; a killed run continues where it stopped; settings that change
the records (prompt version, sampling, teacher, seed) are refused against an existing log; teacher calls go through
the call cache; outputs are written atomically with a ``<split>.<kind>.manifest.json`` (counts, usage, params).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

PROMPT_VERSION = 1
ORACLE_SYSTEM = (
    "You are a helpful assistant who knows the user well. This is what you know about them:\n{persona}\n\n"
    "Answer the user's request directly and make the answer fit this person: their situation, preferences and "
    "constraints. Do not ask questions."
)
PERSONA_INSTRUCTION = (
    "Here are two short profiles of people, for inspiration only:\n\nProfile 1:\n{first}\n\nProfile 2:\n{second}\n\n"
    "Invent a NEW, realistic person who is different from both. Write exactly five numbered lines:\n"
    "1. Full name, age, occupation.\n2.-5. one line each about their interests, habits, values and daily life.\n"
    "Write only the five lines."
)


def oracle_messages(persona: str, first_turn: str) -> list[Message]:
    """The oracle's prompt: the persona in the system message, the user's first turn as the request."""
    return [{"role": "system", "content": ORACLE_SYSTEM.format(persona=persona.strip())},
            {"role": "user", "content": first_turn}]


def prodigy_profile(character: Mapping[str, Any]) -> str:
    """A PRODIGy character as a short profile: gender, MBTI and the first-person biography."""
    biography = " ".join(character.get("biography") or [])
    return f"Gender: {character.get('gender', 'unknown')}. Personality (MBTI): {character.get('mbti', 'unknown')}.\n" \
           f"{biography}"


def persona_messages(seeds: Sequence[Mapping[str, Any]]) -> list[Message]:
    """The persona-writing prompt, few-shot from two PRODIGy characters."""
    return [{"role": "user", "content": PERSONA_INSTRUCTION.format(first=prodigy_profile(seeds[0]),
                                                                   second=prodigy_profile(seeds[1]))}]


def parse_persona(text: str) -> tuple[str, str] | None:
    """``(description, name)`` from a teacher's persona, or None when the first line gives no name.

    The name is the first line's text before its first comma, without the ``1.`` numbering and markdown; it must be
    one to five capitalised words (``Jackson "Jax" Crenshaw`` passes, ``no name here`` does not)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    first = re.sub(r"^\s*(1[.)]|-|\*)\s*", "", lines[0])
    name = re.sub(r"[*_#]", "", first.split(",")[0]).strip()
    words = name.split()
    if not words or len(words) > 5 or not all(w.lstrip("\"'“(")[:1].isupper() for w in words):
        return None  # a name is one to five capitalised words
    return "\n".join(lines), name


def seed_pair(character_ids: Sequence[str], seed: int, split: str, index: int) -> list[str]:
    """The two PRODIGy characters of persona ``index`` (seeded per (seed, split, index))."""
    return random.Random(f"stargate-personas:{seed}:{split}:{index}").sample(list(character_ids), 2)


def _run_logged(items: Sequence[tuple[str, list[Message]]], teacher: ChatBackend, params: SamplingParams,
                log_path: Path, done: set[str], batch_size: int, label: str,
                to_record: Callable[[str, str], dict[str, Any]]) -> int:
    """Send every item not in ``done`` to the teacher in fixed chunks, appending each chunk's records to the log."""
    from clarifylab.data.builders.ambigsql_log import append_records

    if batch_size < 1:
        raise ConfigError(f"task.batch_size must be >= 1, got {batch_size}")
    todo = sum(item_id not in done for item_id, _ in items)
    started, processed = time.monotonic(), 0
    for start in range(0, len(items), batch_size):
        chunk = [(i, m) for i, m in items[start:start + batch_size] if i not in done]
        if not chunk:
            continue
        replies = teacher.complete([m for _, m in chunk], params)
        append_records(log_path, [to_record(i, reply) for (i, _), reply in zip(chunk, replies)])
        done.update(i for i, _ in chunk)
        processed += len(chunk)
        rate = processed / max(time.monotonic() - started, 1e-9)
        message = f"{label}: {processed}/{todo} items, {rate:.2f} items/s, ETA {(todo - processed) / rate:.0f} s"
        log.info(message)
        print(message, flush=True)
    return processed


def _teacher_and_log(out_dir: str, split: str, kind: str, teacher_node: Any, paths: Mapping[str, Any],
                     fingerprint: dict[str, Any], pending: bool, generator: ChatBackend | None, hint: str):
    from clarifylab.backends.accounting import UsageMeter
    from clarifylab.backends.teacher_nodes import build_teacher
    from clarifylab.data.builders.ambigsql_log import check_fingerprint

    log_path = Path(out_dir) / f"{split}.{kind}.progress.jsonl"
    check_fingerprint(log_path, fingerprint, ignore=("teacher",))
    meter = None
    if pending and generator is None:
        meter = UsageMeter()
        generator = build_teacher(teacher_node, paths["cache_dir"], meter, "teacher", hint)
    if generator is not None:
        check_fingerprint(log_path, {**fingerprint, "teacher": getattr(generator, "model_id", None)})
    return log_path, generator, meter


def generate_stargate_oracle(out_dir: str, data_dir: str, split: str, teacher: Mapping[str, Any] | None,
                             paths: Mapping[str, Any], personas_dir: str | None = None, max_tasks: int | None = None,
                             max_personas: int | None = None, max_new_tokens: int = 300, temperature: float = 0.0,
                             top_p: float = 1.0, seed: int = 0, batch_size: int = 8,
                             generator: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=stargate_oracle task.split=A``: one oracle answer per (persona, task) pair.

    Args:
        out_dir: holds the progress log, ``<split>.json`` and the manifest.
        data_dir: the native STaR-GATE folder (tasks; personas unless ``personas_dir``).
        split: ``A`` | ``B`` | ``test``; max_tasks / max_personas: the slice (first N of each).
        teacher: the oracle's backend node; generator: an already-built backend (tests).
        max_new_tokens, temperature, top_p, seed: the oracle's decoding (paper: 300 tokens).
        batch_size: pairs per chunk (one call and one fsynced append each).

    Returns:
        The manifest (``counts``, ``files``, ``params``, ``usage``).
    """
    from clarifylab.backends.teacher_nodes import plain
    from clarifylab.data.builders.ambigsql_log import recover_log
    from clarifylab.data.loaders.stargate import read_split, split_examples
    from clarifylab.io import write_json

    paths = plain(paths)
    raw = read_split(data_dir, split, personas_dir, None)
    examples = split_examples(raw, split, max_tasks, max_personas)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=None if temperature == 0 else seed)
    fingerprint = {"kind": "oracle", "prompt_version": PROMPT_VERSION, "split": split, "sampling": params.to_dict(),
                   "personas_dir": personas_dir, "teacher": getattr(generator, "model_id", None)}
    log_path = Path(out_dir) / f"{split}.oracle.progress.jsonl"
    done = {r["id"] for r in recover_log(log_path)}
    log_path, generator, meter = _teacher_and_log(
        out_dir, split, "oracle", teacher, paths, fingerprint, any(e.id not in done for e in examples), generator,
        "python generate.py task=stargate_oracle teacher@task.teacher=smollm2")
    items = [(e.id, oracle_messages(e.meta["persona"], e.history[0].content)) for e in examples]
    if generator is not None:
        _run_logged(items, generator, params, log_path, done, batch_size, f"stargate_oracle[{split}]",
                    lambda item_id, reply: {"id": item_id, "answer": reply.strip()})
    records = {r["id"]: r for r in recover_log(log_path)}
    answers = {e.id: [records[e.id]["answer"]] for e in examples if e.id in records and records[e.id]["answer"]}
    files = {"oracle": str(Path(out_dir) / f"{split}.json")}
    write_json(files["oracle"], answers)
    manifest: dict[str, Any] = {
        "task": "stargate_oracle", "progress_log": str(log_path), "files": files,
        "counts": {"pairs": len(examples), "answered": len(answers),
                   "empty": sum(1 for e in examples if e.id in records and not records[e.id]["answer"]),
                   "logged_outside_plan": len(set(records) - {e.id for e in examples})},
        "params": {"data_dir": str(data_dir), "split": split, "personas_dir": personas_dir, "max_tasks": max_tasks,
                   "max_personas": max_personas, "sampling": params.to_dict(), "batch_size": batch_size,
                   "prompt_version": PROMPT_VERSION, "teacher": getattr(generator, "model_id", None)}}
    if meter is not None:
        manifest["usage"] = meter.summary()
    write_json(Path(out_dir) / f"{split}.oracle.manifest.json", manifest)
    return manifest


def generate_stargate_personas(out_dir: str, prodigy_path: str, split: str, n_personas: int,
                               teacher: Mapping[str, Any] | None, paths: Mapping[str, Any], max_new_tokens: int = 160,
                               temperature: float = 1.4, top_p: float = 1.0, seed: int = 0, batch_size: int = 8,
                               generator: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=stargate_personas task.split=A task.n_personas=20``: new personas, few-shot from two
    random PRODIGy characters each (module docstring). A reply without a parsable name on its first line is dropped
    (counted as ``unparsable``); the output keeps the parsable ones in persona order.

    Returns:
        The manifest (``counts``, ``files``, ``params``, ``usage``).
    """
    from clarifylab.backends.teacher_nodes import plain
    from clarifylab.data.builders.ambigsql_log import recover_log
    from clarifylab.io import write_json

    paths = plain(paths)
    characters = json.loads(Path(prodigy_path).read_text(encoding="utf-8"))
    if not isinstance(characters, dict) or len(characters) < 2:
        raise DataFormatError(f"{prodigy_path}: expected a JSON object of at least two PRODIGy characters")
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=None if temperature == 0 else seed)
    ids = sorted(characters)
    items = []
    for index in range(n_personas):
        pair = seed_pair(ids, seed, split, index)
        items.append((f"persona-{index}", persona_messages([characters[c] for c in pair])))
    fingerprint = {"kind": "personas", "prompt_version": PROMPT_VERSION, "split": split, "seed": seed,
                   "sampling": params.to_dict(), "teacher": getattr(generator, "model_id", None)}
    log_path = Path(out_dir) / f"{split}.personas.progress.jsonl"
    done = {r["id"] for r in recover_log(log_path)}
    log_path, generator, meter = _teacher_and_log(
        out_dir, split, "personas", teacher, paths, fingerprint, any(i not in done for i, _ in items), generator,
        "python generate.py task=stargate_personas teacher@task.teacher=smollm2")
    if generator is not None:
        _run_logged(items, generator, params, log_path, done, batch_size, f"stargate_personas[{split}]",
                    lambda item_id, reply: {"id": item_id, "text": reply})
    records = {r["id"]: r for r in recover_log(log_path)}
    personas, names, unparsable = [], [], 0
    for item_id, _ in items:
        if item_id not in records:
            continue
        parsed = parse_persona(records[item_id]["text"])
        if parsed is None:
            unparsable += 1
            continue
        personas.append(parsed[0])
        names.append(parsed[1])
    files = {"personas": str(Path(out_dir) / f"{split}.json"), "names": str(Path(out_dir) / f"{split}_NAMES.json")}
    write_json(files["personas"], personas)
    write_json(files["names"], names)
    manifest: dict[str, Any] = {
        "task": "stargate_personas", "progress_log": str(log_path), "files": files,
        "counts": {"planned": n_personas, "written": len(personas), "unparsable": unparsable},
        "params": {"prodigy_path": str(prodigy_path), "split": split, "n_personas": n_personas, "seed": seed,
                   "sampling": params.to_dict(), "batch_size": batch_size, "prompt_version": PROMPT_VERSION,
                   "teacher": getattr(generator, "model_id", None)}}
    if meter is not None:
        manifest["usage"] = meter.summary()
    write_json(Path(out_dir) / f"{split}.personas.manifest.json", manifest)
    return manifest
