"""CachedBackend: zero inner calls on re-runs, misses-only inner calls, sampling keys, persistence,
crash safety and concurrent writers."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.cache import (
    CachedBackend,
    cache_key,
    iter_entries,
    positions_to_compute,
    repeat_indices,
    request_record,
)
from clarifylab.backends.openai_backend import sample_seed
from clarifylab.errors import ConfigError

GREEDY = SamplingParams(max_new_tokens=4)
HERE = str(Path(__file__).resolve().parent)  # child processes import RecordingBackend from here


def conv(text: str) -> list[Message]:
    return [{"role": "system", "content": "answer the question"}, {"role": "user", "content": text}]


class RecordingBackend:
    """A deterministic backend: greedy -> the user text upper-cased; sampled -> a digest of the text
    and the per-copy seed OpenAIBackend would send (like a seed-honouring server). Records every
    batch it receives."""

    name = "recording"

    def __init__(self, model_id: str = "rec-1") -> None:
        self.model_id = model_id
        self.batches: list[list[str]] = []

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        texts = [conversation[-1]["content"] for conversation in batch]
        self.batches.append(texts)
        if params.greedy:
            return [text.upper() for text in texts]
        return [hashlib.sha256(f"{text}|{sample_seed(params.seed, k)}".encode()).hexdigest()[:8]
                for text, k in zip(texts, repeat_indices(batch))]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "calls" / "teacher.sqlite"


def test_repeat_indices_and_positions_to_compute_on_hand_cases():
    a, b = conv("a"), conv("b")
    assert repeat_indices([a, b, a, a]) == [0, 0, 1, 2]
    # sampled: copy 2 of "a" misses -> copies 0..2 of "a" are sent; "b" is cached
    assert positions_to_compute(["a", "b", "a", "a"], ["a0", "b0", "a1", "a2"], [True, True, True, False]) == [0, 2, 3]
    # greedy duplicates share a key: computed once, at the first position
    assert positions_to_compute(["a", "b", "a"], ["ka", "kb", "ka"], [False, False, False]) == [0, 1]
    assert positions_to_compute(["a", "b"], ["ka", "kb"], [True, True]) == []


def test_greedy_key_ignores_seed_and_sample_but_sampled_key_uses_both():
    def key(temperature: float, seed: int, sample: int) -> str:
        params = SamplingParams(temperature=temperature, seed=seed)
        return cache_key(request_record("x", "m", "", conv("q"), params, sample))

    assert key(0.0, 1, 0) == key(0.0, 2, 3)  # greedy: seed and sample index do not split the cache
    assert len({key(1.0, 1, 0), key(1.0, 1, 1), key(1.0, 2, 0)}) == 3 and key(1.0, 1, 0) == key(1.0, 1, 0)


def test_rerun_on_a_real_tiny_model_makes_zero_inner_calls(db):
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.models.tiny import build_tiny_model_and_tokenizer

    inner = TransformersBackend(*build_tiny_model_and_tokenizer(seed=0), model_id="tiny:seed=0")
    cached = CachedBackend(inner, db, namespace="teacher")
    batch = [conv("what is the revenue"), conv("what is the profit in 2021"), conv("which year")]
    first = cached.complete(batch, GREEDY)
    assert first == inner.complete(batch, GREEDY)  # the cache returns exactly what the model said
    calls_before = inner.usage["calls"]
    second = cached.complete(batch, GREEDY)
    assert second == first
    assert inner.usage["calls"] == calls_before  # zero inner calls on the re-run
    assert cached.stats == {"hits": 3, "misses": 3, "inner_calls": 1, "bypassed": 0}


def test_partial_hits_send_only_the_misses_once_in_order(db):
    inner = RecordingBackend()
    cached = CachedBackend(inner, db)
    assert cached.complete([conv("a"), conv("b")], GREEDY) == ["A", "B"]
    replies = cached.complete([conv("c"), conv("a"), conv("d"), conv("b"), conv("c")], GREEDY)
    assert replies == ["C", "A", "D", "B", "C"]
    assert inner.batches == [["a", "b"], ["c", "d"]]  # one inner call per complete, misses only, dupes once
    assert cached.stats == {"hits": 3, "misses": 4, "inner_calls": 2, "bypassed": 0}
    assert len(cached) == 4


def test_sampled_requests_hit_with_the_same_seed_and_miss_with_another(db):
    inner = RecordingBackend()
    cached = CachedBackend(inner, db)
    hot = SamplingParams(max_new_tokens=4, temperature=0.8, seed=7)
    batch = [conv("q")] * 3
    samples = cached.complete(batch, hot)
    assert len(set(samples)) == 3 and len(cached) == 3  # N copies = N samples = N entries
    assert cached.complete(batch, hot) == samples and len(inner.batches) == 1  # same seed: all hits
    other = cached.complete(batch, SamplingParams(max_new_tokens=4, temperature=0.8, seed=8))
    assert len(inner.batches) == 2 and set(other).isdisjoint(samples)  # another seed: all misses
    # asking for 4 samples after 3 were cached: copies 0..3 go to the backend, stored ones are kept
    more = cached.complete([conv("q")] * 4, hot)
    assert inner.batches[-1] == ["q"] * 4 and more[:3] == samples and len(set(more)) == 4
    # unseeded sampling is not reproducible: it bypasses the cache and stores nothing
    entries = len(cached)
    cached.complete(batch, SamplingParams(temperature=0.8))
    assert cached.stats["bypassed"] == 3 and len(cached) == entries


def test_entries_persist_across_instances_and_keys_separate_models_and_namespaces(db):
    CachedBackend(RecordingBackend(), db, namespace="teacher").complete([conv("a")], GREEDY)
    reopened_inner = RecordingBackend()
    reopened = CachedBackend(reopened_inner, db, namespace="teacher")
    assert reopened.complete([conv("a")], GREEDY) == ["A"] and reopened_inner.batches == []
    for inner, namespace in [(RecordingBackend(model_id="rec-2"), "teacher"), (RecordingBackend(), "judge")]:
        CachedBackend(inner, db, namespace=namespace).complete([conv("a")], GREEDY)
        assert inner.batches == [["a"]]
    assert [record["model"] for record, _ in iter_entries(db)] == ["rec-1", "rec-2", "rec-1"]


def test_uncommitted_writes_are_invisible_and_a_killed_writer_leaves_a_valid_file(db):
    cached = CachedBackend(RecordingBackend(), db)
    cached.complete([conv("a"), conv("b")], GREEDY)
    # A child process commits one call, then dies (SIGKILL) in the middle of its next transaction.
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {HERE!r})
        from test_call_cache import RecordingBackend, conv, GREEDY
        from clarifylab.backends.cache import CachedBackend
        cached = CachedBackend(RecordingBackend(), {str(db)!r})
        cached.complete([conv("c")], GREEDY)
        with cached._transaction() as connection:
            connection.execute("INSERT INTO calls VALUES ('half', '{{}}', 'never committed', 0)")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT COUNT(*) FROM calls WHERE key = 'half'").fetchone() == (0,)
    check.close()
    inner = RecordingBackend()
    survivor = CachedBackend(inner, db)
    assert survivor.complete([conv("a"), conv("b"), conv("c")], GREEDY) == ["A", "B", "C"] and inner.batches == []
    # While another connection holds an open write transaction, readers still get committed rows.
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO calls VALUES ('pending', '{}', 'x', 0)")
    assert survivor.complete([conv("a")], GREEDY) == ["A"] and inner.batches == []
    writer.execute("ROLLBACK")
    writer.close()
    survivor.complete([conv("d")], GREEDY)  # and new writes still work
    assert len(survivor) == 4


def test_concurrent_processes_share_one_file(db):
    CachedBackend(RecordingBackend(), db).close()  # create the schema once
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {HERE!r})
        from test_call_cache import RecordingBackend, conv, GREEDY
        from clarifylab.backends.cache import CachedBackend
        cached = CachedBackend(RecordingBackend(), {str(db)!r})
        for i in range(30):
            replies = cached.complete([conv(f"shared {{i}}"), conv(f"own {{sys.argv[1]}} {{i}}")], GREEDY)
            assert replies[0] == f"SHARED {{i}}"
    """)
    processes = [subprocess.Popen([sys.executable, "-c", writer, str(n)], stderr=subprocess.PIPE, text=True)
                 for n in range(3)]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    assert len(CachedBackend(RecordingBackend(), db)) == 30 + 3 * 30


def test_rejects_non_backends_and_unwritable_paths(tmp_path):
    with pytest.raises(ConfigError, match="needs a ChatBackend"):
        CachedBackend(object(), tmp_path / "x.sqlite")  # type: ignore[arg-type]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the call cache"):
        CachedBackend(RecordingBackend(), blocker / "calls.sqlite")
    assert isinstance(CachedBackend(RecordingBackend(), tmp_path / "ok.sqlite"), ChatBackend)


def test_factory_wraps_a_tiny_transformers_backend_in_a_cache(tmp_path):
    from omegaconf import OmegaConf

    from clarifylab.backends.factory import build_backend

    node = OmegaConf.create({"kind": "transformers", "batch_size": 2, "cache": True, "namespace": "sim/ulator",
                             "model": {"_target_": "clarifylab.models.ModelSpec", "source": "tiny", "seed": 3,
                                       "role": "simulator"}})
    backend = build_backend(node, tmp_path)
    assert isinstance(backend, CachedBackend) and backend.path == tmp_path / "calls" / "sim_ulator.sqlite"
    assert backend.model_id == "tiny:seed=3" and backend.inner.batch_size == 2
    question = [conv("what is the revenue")]
    assert backend.complete(question, GREEDY) == backend.complete(question, GREEDY)
    assert backend.stats["hits"] == 1 and backend.stats["inner_calls"] == 1
    policy = RecordingBackend()
    assert build_backend({"kind": "transformers", "model": "policy"}, tmp_path, policy=policy) is policy
    with pytest.raises(ConfigError, match="cache: false"):
        build_backend({"kind": "transformers", "model": "policy", "cache": True}, tmp_path, policy=policy)
    with pytest.raises(ConfigError, match="no policy was passed"):
        build_backend({"kind": "transformers", "model": "policy"}, tmp_path)
    with pytest.raises(ConfigError, match=r"kind='vllm' is not one of"):
        build_backend({"kind": "vllm"}, tmp_path)
