"""A persistent on-disk cache of chat calls in front of any :class:`ChatBackend`.

Re-runs are free and reproducible: every reply is stored in one SQLite table keyed by the sha256 of
a canonical JSON request (see :func:`request_record`):

- ``backend`` / ``model``: ``inner.name`` and ``inner.model_id``;
- ``namespace``: a free label that separates caches sharing one file (e.g. ``teacher``);
- ``messages``: the conversation, exactly (role and content of every message);
- ``params``: :meth:`SamplingParams.to_dict`, with ``seed`` set to ``None`` when greedy (greedy
  decoding ignores the seed, so it must not split the cache);
- ``sample``: ``None`` when greedy; when sampling (temperature > 0), the *repeat index* of the
  conversation: 0 for its first occurrence in the batch, 1 for the second identical copy, ...

So greedy requests are shared by every caller with the same conversation, while N copies of a
prompt in one sampled batch are N entries (samples 0..N-1 under ``params.seed``): re-running with
the same seed hits all of them, a different seed misses all of them. Sampled requests *without* a
seed are not reproducible by definition; they bypass the cache (counted in ``stats["bypassed"]``).
When only some samples of a conversation are stored, see :func:`positions_to_compute` for what is
recomputed. A stored reply is what the inner backend returned when it was written; for the
transformers backend a sampled reply also depends on the rest of its batch (one RNG stream per
chunk), for :class:`~clarifylab.backends.openai_backend.OpenAIBackend` only on the key's fields.

Never cache a backend whose weights change under the same ``model_id`` (the policy being trained):
keys cannot see the weights.

Concurrency and crashes: WAL journal, a 60 s busy timeout, ``INSERT OR IGNORE`` (two processes that
computed the same entry keep the first), and all replies of one ``complete`` call are written in
one transaction — a killed run loses at most that call's replies; every committed row stays valid.
WAL needs all processes on one host with a local (not NFS) file system: on a cluster, give each
node its own ``paths.cache_dir`` or put it on node-local disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.errors import ConfigError

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key      TEXT PRIMARY KEY,  -- sha256 hex of the canonical request JSON
    request  TEXT NOT NULL,     -- the canonical request JSON itself (for inspection)
    response TEXT NOT NULL,     -- the reply text
    created  REAL NOT NULL      -- unix time of insertion
)
"""
BUSY_TIMEOUT_S = 60.0
LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), well below SQLite's variable limit


def request_record(backend: str, model: str, namespace: str, messages: Sequence[Message],
                   params: SamplingParams, sample: int | None) -> dict[str, Any]:
    """The dict a cache key is computed from (see the module docstring for its semantics)."""
    params_dict = params.to_dict()
    if params.greedy:
        params_dict["seed"] = None
        sample = None
    return {
        "backend": backend,
        "model": model,
        "namespace": namespace,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "params": params_dict,
        "sample": sample,
    }


def canonical_json(record: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, non-ASCII kept as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(record: Any) -> str:
    """sha256 hex digest of :func:`canonical_json` of ``record``."""
    return hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()


def conversation_fingerprint(conversation: Sequence[Message]) -> str:
    """Canonical text of a conversation's (role, content) pairs: equal iff the conversations are."""
    return canonical_json([[m["role"], m["content"]] for m in conversation])


def repeat_indices(batch: Sequence[Sequence[Message]]) -> list[int]:
    """For each conversation, how many identical conversations precede it in ``batch``.

    Example: ``[a, b, a, a] -> [0, 0, 1, 2]``.
    """
    seen: Counter[str] = Counter()
    indices = []
    for conversation in batch:
        fingerprint = conversation_fingerprint(conversation)
        indices.append(seen[fingerprint])
        seen[fingerprint] += 1
    return indices


def positions_to_compute(fingerprints: Sequence[str], keys: Sequence[str], cached: Sequence[bool]) -> list[int]:
    """Batch positions to send to the inner backend, in batch order.

    Copies of one conversation (equal ``fingerprints``) form a group. Greedy copies share one key,
    so a missing one is computed once. Sampled copies have one key each (sample ``k`` = the
    ``k``-th copy), and backends seed copies by their repeat index (see
    :class:`~clarifylab.backends.openai_backend.OpenAIBackend`), so sample ``k`` must again be the
    ``k``-th copy sent: when copy ``k`` misses, copies ``0..k`` are all sent (stored replies are
    kept). E.g. asking for 10 samples after 5 were cached recomputes 10; asking for the same 5 again
    computes nothing.

    Args:
        fingerprints: :func:`conversation_fingerprint` per batch position.
        keys: cache key per position.
        cached: whether each position's key is already stored.
    """
    groups: dict[str, list[int]] = {}
    for position, fingerprint in enumerate(fingerprints):
        groups.setdefault(fingerprint, []).append(position)
    chosen: list[int] = []
    chosen_keys: set[str] = set()
    for positions in groups.values():
        missing_ranks = [rank for rank, position in enumerate(positions) if not cached[position]]
        if not missing_ranks:
            continue
        for position in positions[:max(missing_ranks) + 1]:
            if keys[position] not in chosen_keys:
                chosen_keys.add(keys[position])
                chosen.append(position)
    return sorted(chosen)


class CachedBackend:
    """Wrap ``inner`` so that replies are looked up in / stored to an SQLite file.

    Args:
        inner: the backend that computes misses.
        path: SQLite file (created with its parent directories).
        namespace: label mixed into every key (separates roles sharing one file).

    ``name`` and ``model_id`` are the inner backend's. Attributes:
        inner: the wrapped backend.
        stats: ``hits``, ``misses`` (conversations), ``inner_calls`` (``inner.complete`` calls),
            ``bypassed`` (unseeded sampled conversations passed through uncached).
    """

    def __init__(self, inner: ChatBackend, path: str | os.PathLike[str], namespace: str = "") -> None:
        if not isinstance(inner, ChatBackend):
            raise ConfigError(f"CachedBackend needs a ChatBackend (name, model_id, complete), "
                              f"got {type(inner).__name__}")
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.path = Path(path)
        self.namespace = namespace
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "inner_calls": 0, "bypassed": 0}
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._warned_unseeded = False
        self._connect()  # fail now, not at the first call, if the path is unusable

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, path={str(self.path)!r}, namespace={self.namespace!r})"

    def _connect(self) -> sqlite3.Connection:
        """The connection of this process (reopened after a fork: SQLite handles must not cross one)."""
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process loses no committed row; a power cut may drop the last commits.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(f"cannot open the call cache {self.path}: {error}. Check paths.cache_dir "
                              f"(must be a writable directory) or set cache: false for this backend.") from error
        self._connection, self._pid = connection, os.getpid()
        return connection

    def close(self) -> None:
        """Close the SQLite connection (a later call reopens it)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    def __len__(self) -> int:
        """Entries stored in the file (all namespaces)."""
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """Replies from the cache where present; the misses go to ``inner.complete`` in ONE call
        (in their original order) and are stored in one transaction. Returns them in input order."""
        if not batch:
            return []
        if not params.greedy and params.seed is None:
            return self._bypass(batch, params)
        fingerprints = [conversation_fingerprint(conversation) for conversation in batch]
        samples = repeat_indices(batch)
        requests = [canonical_json(request_record(self.inner.name, self.inner.model_id, self.namespace,
                                                  conversation, params, sample))
                    for conversation, sample in zip(batch, samples)]
        keys = [hashlib.sha256(request.encode("utf-8")).hexdigest() for request in requests]
        found = self._lookup(keys)
        to_compute = positions_to_compute(fingerprints, keys, [key in found for key in keys])
        if to_compute:
            computed = self.inner.complete([batch[i] for i in to_compute], params)
            if len(computed) != len(to_compute):
                raise RuntimeError(f"{self.inner!r} returned {len(computed)} replies for {len(to_compute)} "
                                   "conversations")
            self._store([(keys[i], requests[i], text) for i, text in zip(to_compute, computed)])
            for i, text in zip(to_compute, computed):
                found.setdefault(keys[i], text)  # an entry already cached keeps its stored reply
        replies = [found[key] for key in keys]
        with self._lock:
            self.stats["hits"] += len(batch) - len(to_compute)
            self.stats["misses"] += len(to_compute)
            self.stats["inner_calls"] += 1 if to_compute else 0
        return replies

    def _bypass(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        if not self._warned_unseeded:
            logger.warning("%s: sampled requests without a seed are not cached (not reproducible); set a seed in "
                           "the sampling parameters to cache them", self.path.name)
            self._warned_unseeded = True
        replies = self.inner.complete(batch, params)
        with self._lock:
            self.stats["bypassed"] += len(batch)
            self.stats["inner_calls"] += 1
        return replies

    def _lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """``{key: response}`` for the keys present in the file."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self._lock:
            connection = self._connect()
            for start in range(0, len(unique), LOOKUP_CHUNK):
                chunk = unique[start:start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(connection.execute(f"SELECT key, response FROM calls WHERE key IN ({marks})", chunk))
        return found

    def _store(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Insert ``(key, request, response)`` rows in one transaction (first writer wins on a key)."""
        now = time.time()
        with self._lock, self._transaction() as connection:
            connection.executemany("INSERT OR IGNORE INTO calls (key, request, response, created) VALUES (?, ?, ?, ?)",
                                   [(key, request, response, now) for key, request, response in rows])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on the autocommit connection."""
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def iter_entries(path: str | os.PathLike[str]) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield ``(request_record, response)`` for every entry of a cache file (for inspection)."""
    connection = sqlite3.connect(Path(path), timeout=BUSY_TIMEOUT_S)
    try:
        for request, response in connection.execute("SELECT request, response FROM calls ORDER BY created"):
            yield json.loads(request), response
    finally:
        connection.close()
