"""OpenAIBackend against real HTTP servers on 127.0.0.1: ``transformers serve`` with the tiny model,
and a small stdlib server that answers 429/503/400 on purpose to exercise the retry policy."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.cache import CachedBackend
from clarifylab.backends.openai_backend import BackendCallError, OpenAIBackend, backoff_delay, sample_seed
from clarifylab.errors import ConfigError

SENTINEL_KEY = "sk-SENTINEL-do-not-log-4f1c9e"
KEY_ENV = "CLARIFYLAB_TEST_API_KEY"
SERVER_START_DEADLINE_S = 60
GREEDY = SamplingParams(max_new_tokens=6)
CONVERSATIONS = [[{"role": "system", "content": "answer the question"},
                  {"role": "user", "content": f"what is the {word} in {year}"}]
                 for word, year in [("revenue", 2020), ("profit", 2021), ("cost", 2019), ("margin", 2022),
                                    ("debt", 2018), ("tax", 2023)]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fast(url: str, **options) -> OpenAIBackend:
    """A backend with small timeouts and backoff, so failing tests fail fast."""
    settings = {"api_key_env": None, "timeout_s": 30, "max_retries": 2, "backoff_s": 0.01} | options
    return OpenAIBackend(url, "tiny", **settings)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SENTINEL_KEY not in text


# --- transformers serve ---------------------------------------------------------------------------


def server_unavailable(reason: str) -> None:
    """Skip a test that needs the real server when it cannot start, except in CI (env CI set and not false/0),
    where a server that does not start must fail the run instead of hiding the tests."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


def test_a_server_that_does_not_start_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI: serve exited"):
        server_unavailable("serve exited")
    for value in ("false", ""):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception, match="serve exited"):
            server_unavailable("serve exited")


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory):
    """``transformers serve`` of the tiny random Llama on 127.0.0.1; yields (base_url, model_dir, startup_s)."""
    from clarifylab.models.tiny import build_tiny_model_and_tokenizer

    root = tmp_path_factory.mktemp("served")
    model_dir = root / "tiny"
    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (root / "hub").mkdir()  # /v1/models scans the hub cache and answers 500 if it does not exist
    port = free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hub"),
                        "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())",
               "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    log_path = root / "serve.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        while True:
            if server.poll() is not None:
                server_unavailable(f"transformers serve exited with {server.returncode}: "
                                   f"{log_path.read_text()[-1500:]}")
            if time.perf_counter() - started > SERVER_START_DEADLINE_S:
                server_unavailable(f"transformers serve did not answer /v1/models within {SERVER_START_DEADLINE_S} s: "
                                   f"{log_path.read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        yield base_url, model_dir, time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@pytest.mark.integration  # a real `transformers serve` (~8 s to start, ~17 s with the model export); runs in CI
def test_chat_completion_returns_text_counts_usage_and_matches_the_local_model(served_tiny):
    base_url, model_dir, startup_s = served_tiny
    print(f"transformers serve answered after {startup_s:.1f} s")
    backend = OpenAIBackend(base_url, str(model_dir), api_key_env=None, timeout_s=30, max_retries=0)
    replies = backend.complete(CONVERSATIONS[:2], GREEDY)
    assert isinstance(backend, ChatBackend)
    assert len(replies) == 2 and all(isinstance(reply, str) and reply for reply in replies)
    assert backend.usage["calls"] == 1 and backend.usage["conversations"] == 2 and backend.usage["requests"] == 2
    assert 0 < backend.usage["completion_tokens"] <= 2 * GREEDY.max_new_tokens
    # the server renders the same chat template, so prompt tokens and greedy text equal the local backend's
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.models.tiny import build_tiny_model_and_tokenizer

    local = TransformersBackend(*build_tiny_model_and_tokenizer(seed=0))
    assert replies == local.complete(CONVERSATIONS[:2], GREEDY)
    assert backend.usage["prompt_tokens"] == local.usage["prompt_tokens"]


@pytest.mark.integration  # a real `transformers serve` (~8 s to start, ~17 s with the model export); runs in CI
def test_concurrent_requests_return_replies_in_input_order(served_tiny):
    base_url, model_dir, _ = served_tiny

    class InFlightCounting(OpenAIBackend):
        """Records how many requests were in flight at once."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.in_flight = self.peak = 0
            self.guard = threading.Lock()

        def _complete_one(self, *args):
            with self.guard:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                time.sleep(0.05)  # let the other workers start before this one returns
                return super()._complete_one(*args)
            finally:
                with self.guard:
                    self.in_flight -= 1

    sequential = OpenAIBackend(base_url, str(model_dir), api_key_env=None, max_concurrency=1)
    concurrent = InFlightCounting(base_url, str(model_dir), api_key_env=None, max_concurrency=4)
    expected = sequential.complete(CONVERSATIONS, GREEDY)
    assert len(set(expected)) > 1  # distinct prompts give distinct replies, so order is observable
    assert concurrent.complete(CONVERSATIONS, GREEDY) == expected
    assert 1 < concurrent.peak <= 4
    assert concurrent.usage["prompt_tokens"] == sequential.usage["prompt_tokens"]


@pytest.mark.integration  # a real `transformers serve` (~8 s to start, ~17 s with the model export); runs in CI
def test_cache_in_front_makes_zero_http_requests_on_rerun(served_tiny, tmp_path):
    base_url, model_dir, _ = served_tiny
    backend = OpenAIBackend(base_url, str(model_dir), api_key_env=None)
    cached = CachedBackend(backend, tmp_path / "calls.sqlite", namespace="teacher")
    first = cached.complete(CONVERSATIONS[:3], GREEDY)
    assert backend.usage["requests"] == 3
    assert CachedBackend(backend, tmp_path / "calls.sqlite", namespace="teacher").complete(
        CONVERSATIONS[:3], GREEDY) == first
    assert backend.usage["requests"] == 3  # zero HTTP calls the second time


# --- no model needed: an unreachable port, a missing key, a scripted stdlib server ------------------


def test_unreachable_server_fails_clearly_after_bounded_retries():
    backend = fast(f"http://127.0.0.1:{free_port()}/v1", max_retries=2, timeout_s=2)
    started = time.perf_counter()
    with pytest.raises(BackendCallError, match=r"could not connect after 3 attempt\(s\).*Is the server running"):
        backend.complete(CONVERSATIONS[:1], GREEDY)
    assert time.perf_counter() - started < 10
    assert backend.usage["requests"] == 3 and backend.usage["retries"] == 2


def test_missing_key_variable_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV} is not set.*api_key_env: null"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", api_key_env=KEY_ENV).complete(CONVERSATIONS[:1], GREEDY)
    with pytest.raises(ConfigError, match="max_concurrency must be >= 1"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", max_concurrency=0)


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers chat completions from a script of status codes (then 200), recording each request."""

    script: list[int] = []
    seen: list[dict] = []
    delay_s = 0.0
    in_flight = peak = 0
    guard = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with cls.guard:
            cls.seen.append({"body": body, "authorization": self.headers.get("Authorization")})
            status = cls.script.pop(0) if cls.script else 200
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        time.sleep(cls.delay_s)
        with cls.guard:
            cls.in_flight -= 1
        if status == 200:
            text = body["messages"][-1]["content"][::-1]
            payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": f"  {text} \n"}}],
                       "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}}
        else:
            payload = {"error": {"message": f"scripted {status}", "type": "test"}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted():
    ScriptedHandler.script, ScriptedHandler.seen = [], []
    ScriptedHandler.delay_s, ScriptedHandler.in_flight, ScriptedHandler.peak = 0.0, 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", ScriptedHandler
    server.shutdown()
    server.server_close()


def test_key_is_sent_but_never_logged_or_exposed(scripted, monkeypatch, caplog):
    url, handler = scripted
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    for name in ("", "openai", "httpx", "httpx2", "httpcore", "clarifylab"):
        caplog.set_level(logging.DEBUG, logger=name)
    handler.script = [503]  # one retry, so the retry warning is logged too
    backend = fast(url, api_key_env=KEY_ENV)
    assert backend.complete(CONVERSATIONS[:2], GREEDY)
    assert {seen["authorization"] for seen in handler.seen} == {f"Bearer {SENTINEL_KEY}"}  # it was sent
    handler.script = [401]
    with pytest.raises(ConfigError) as refused:
        backend.complete(CONVERSATIONS[:1], GREEDY)
    with pytest.raises(BackendCallError) as unreachable:
        fast(f"http://127.0.0.1:{free_port()}/v1", api_key_env=KEY_ENV, max_retries=1).complete(
            CONVERSATIONS[:1], GREEDY)
    assert any("retrying" in record.getMessage() for record in caplog.records)  # logs were captured
    assert_no_secret(caplog.text, repr(backend), repr(vars(backend)), str(backend.usage),
                     *("".join(traceback.TracebackException.from_exception(error.value, capture_locals=True).format())
                       for error in (refused, unreachable)))  # even a traceback printed with its locals


def test_concurrent_requests_overlap_and_keep_input_order(scripted):
    url, handler = scripted
    handler.delay_s = 0.1
    backend = fast(url, max_concurrency=3)
    started = time.perf_counter()
    replies = backend.complete(CONVERSATIONS, GREEDY)
    elapsed = time.perf_counter() - started
    assert replies == [c[-1]["content"][::-1] for c in CONVERSATIONS]
    assert handler.peak == 3 and elapsed < 6 * 0.1  # 6 requests of 0.1 s in two waves of 3


def test_retries_429_and_5xx_then_succeeds_and_sends_sampling_fields(scripted, monkeypatch):
    url, handler = scripted
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    handler.script = [429, 503]
    backend = fast(url, api_key_env=KEY_ENV, max_concurrency=1, extra_body={"top_k": 5})
    hot = SamplingParams(max_new_tokens=9, temperature=0.7, top_p=0.9, seed=7)
    replies = backend.complete([CONVERSATIONS[0], CONVERSATIONS[0]], hot)
    assert replies == ["0202 ni eunever eht si tahw"] * 2  # stripped reply text
    assert backend.usage == {"prompt_tokens": 22, "completion_tokens": 8, "conversations": 2, "calls": 1,
                             "requests": 4, "retries": 2}
    first = handler.seen[0]
    assert first["authorization"] == f"Bearer {SENTINEL_KEY}"
    assert {k: first["body"][k] for k in ("temperature", "top_p", "max_tokens", "top_k")} == \
        {"temperature": 0.7, "top_p": 0.9, "max_tokens": 9, "top_k": 5}
    assert sorted(seen["body"]["seed"] for seen in handler.seen[-2:]) == sorted([7, sample_seed(7, 1)])
    assert sample_seed(7, 1) not in (7, 8) and sample_seed(8, 0) == 8


def test_client_errors_are_not_retried_and_greedy_sends_no_seed(scripted):
    url, handler = scripted
    handler.script = [400]
    backend = fast(url, max_tokens_param="max_completion_tokens")
    with pytest.raises(BackendCallError, match=r"after 1 attempt\(s\) with HTTP 400"):
        backend.complete(CONVERSATIONS[:1], SamplingParams(max_new_tokens=3, seed=5))
    body = handler.seen[0]["body"]
    assert "seed" not in body and body["max_completion_tokens"] == 3 and body["temperature"] == 0
    assert handler.seen[0]["authorization"] == "Bearer EMPTY"
    handler.script = [401]
    with pytest.raises(ConfigError, match="refused the API key"):
        backend.complete(CONVERSATIONS[:1], GREEDY)


def test_backoff_doubles_with_bounded_jitter():
    import random

    rng = random.Random(0)
    for attempt in range(5):
        delay = backoff_delay(attempt, 0.5, rng)
        assert 0.5 * 2**attempt * 0.5 <= delay < 0.5 * 2**attempt * 1.5


def test_factory_builds_an_openai_backend_from_a_config_node(tmp_path):
    from omegaconf import OmegaConf

    from clarifylab.backends.factory import build_backend

    node = OmegaConf.create({"kind": "openai", "base_url": "http://127.0.0.1:8000/v1/", "model": "served",
                             "api_key_env": None, "max_concurrency": 2, "extra_body": {"top_k": 5},
                             "cache": True, "namespace": "judge", "cost": {"prompt_per_1k": 0.1}})
    backend = build_backend(node, tmp_path)
    assert isinstance(backend, CachedBackend) and backend.path == tmp_path / "calls" / "judge.sqlite"
    inner = backend.inner
    assert isinstance(inner, OpenAIBackend)
    assert (inner.base_url, inner.model_id, inner.api_key_env, inner.max_concurrency, inner.extra_body) == \
        ("http://127.0.0.1:8000/v1", "served", None, 2, {"top_k": 5})
    with pytest.raises(ConfigError, match="needs model"):
        build_backend({"kind": "openai", "base_url": "http://127.0.0.1:8000/v1"}, tmp_path)
    with pytest.raises(ConfigError, match=r"unknown keys \['temperature'\]"):
        build_backend({"kind": "openai", "base_url": "u", "model": "m", "temperature": 0.5}, tmp_path)
