"""Any OpenAI-compatible chat-completions endpoint (vLLM, ``transformers serve``, llama.cpp server,
hosted APIs) behind the :class:`~clarifylab.backends.base.ChatBackend` interface.

One ``chat.completions`` request per conversation, ``max_concurrency`` of them in flight at once
(a thread pool), each retried with exponential backoff and jitter on connection errors, timeouts,
408/409/429 and 5xx answers. Retries are done here, not by the ``openai`` client (its
``max_retries`` is set to 0), so the schedule is exactly ``backoff_s * 2**attempt * U(0.5, 1.5)``
and the final error says how many attempts were made.

The API key is read from the environment variable *named* by ``api_key_env`` when ``complete`` is
called and lives only in a client local to that call: it is never stored on the backend, logged,
put into ``repr``, ``usage`` or the messages of exceptions raised here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clarifylab.backends.base import Message, SamplingParams
from clarifylab.backends.cache import repeat_indices
from clarifylab.errors import ClarifyLabError, ConfigError

logger = logging.getLogger(__name__)

NO_KEY = "EMPTY"
"""Key sent when ``api_key_env`` is ``None`` (local servers accept any key)."""

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""HTTP statuses worth retrying besides every 5xx."""


class BackendCallError(ClarifyLabError, RuntimeError):
    """A model endpoint could not answer (unreachable after retries, or refused the request)."""


def backoff_delay(attempt: int, backoff_s: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``backoff_s * 2**attempt`` times a jitter
    factor drawn uniformly from [0.5, 1.5) (spreads out clients that failed together)."""
    return backoff_s * (2.0 ** attempt) * rng.uniform(0.5, 1.5)


def sample_seed(seed: int, repeat: int) -> int:
    """The seed sent for the ``repeat``-th copy of a conversation: ``seed`` itself for the first copy,
    else a hash of ``(seed, repeat)`` in [0, 2**31). Hashing (not ``seed + repeat``) keeps the
    samples of seed 7 and seed 8 apart instead of sharing all but one."""
    if repeat == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:{repeat}".encode()).hexdigest()[:8], 16) % 2**31


def is_retryable(error: BaseException) -> bool:
    """True for transient failures: connection errors/timeouts, 408/409/429 and any 5xx status."""
    import openai

    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUS or error.status_code >= 500
    return False


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (no-op for an empty secret)."""
    return text.replace(secret, "***") if secret else text


class OpenAIBackend:
    """Chat replies from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        base_url: endpoint root including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent with each request; also this backend's ``model_id`` (cache keys).
        api_key_env: name of the environment variable holding the API key, read at call time;
            ``None`` sends the placeholder key ``"EMPTY"`` (local servers).
        timeout_s: per-request timeout in seconds.
        max_retries: retries after the first attempt for transient errors (so ``max_retries + 1``
            attempts at most per conversation).
        backoff_s: base of the exponential backoff in seconds (see :func:`backoff_delay`).
        max_concurrency: requests in flight at once.
        extra_body: extra JSON fields merged into every request body (server-specific options,
            e.g. vLLM's ``{"top_k": 20}``).
        max_tokens_param: request field for the reply length: ``max_tokens`` (vLLM, llama.cpp,
            ``transformers serve``) or ``max_completion_tokens`` (OpenAI reasoning models).

    Sampling: ``temperature``, ``top_p`` and ``max_new_tokens`` map to the request. When sampling
    with a seed, the ``k``-th copy of a conversation in a batch (its repeat index,
    :func:`~clarifylab.backends.cache.repeat_indices`) is sent the seed :func:`sample_seed`
    ``(seed, k)``: N copies of a prompt give N different samples, and on servers that honour
    ``seed`` each reply depends only on (conversation, params, k), which are exactly the fields of
    a :class:`~clarifylab.backends.cache.CachedBackend` key. Greedy requests send no seed.

    Attributes:
        usage: running totals ``prompt_tokens`` and ``completion_tokens`` (as reported by the
            server's ``usage``), ``conversations``, ``calls`` (``complete`` calls), ``requests``
            (HTTP requests including retries) and ``retries``.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", timeout_s: float = 60,
                 max_retries: int = 5, backoff_s: float = 1.0, max_concurrency: int = 8,
                 extra_body: Mapping[str, Any] | None = None, max_tokens_param: str = "max_tokens") -> None:
        if not base_url or not isinstance(base_url, str):
            raise ConfigError(f"OpenAIBackend base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                              f"got {base_url!r}")
        if not model or not isinstance(model, str):
            raise ConfigError(f"OpenAIBackend model must name the served model, got {model!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise ConfigError(f"OpenAIBackend api_key_env must be an environment variable name or null, "
                              f"got {api_key_env!r}")
        if timeout_s <= 0:
            raise ConfigError(f"OpenAIBackend timeout_s must be > 0 seconds, got {timeout_s}")
        if max_retries < 0:
            raise ConfigError(f"OpenAIBackend max_retries must be >= 0, got {max_retries}")
        if backoff_s < 0:
            raise ConfigError(f"OpenAIBackend backoff_s must be >= 0 seconds, got {backoff_s}")
        if max_concurrency < 1:
            raise ConfigError(f"OpenAIBackend max_concurrency must be >= 1, got {max_concurrency}")
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"OpenAIBackend max_tokens_param must be max_tokens or max_completion_tokens, "
                              f"got {max_tokens_param!r}")
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_concurrency = int(max_concurrency)
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_tokens_param = max_tokens_param
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "conversations": 0, "calls": 0,
                                      "requests": 0, "retries": 0}
        self._lock = threading.Lock()
        self._rng = random.Random()  # jitter only; not part of any result

    def __repr__(self) -> str:
        return (f"OpenAIBackend(base_url={self.base_url!r}, model={self.model_id!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})")

    def _api_key(self) -> str:
        """The key from the environment (never stored); ``"EMPTY"`` when no variable is configured."""
        if self.api_key_env is None:
            return NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"OpenAIBackend for model {self.model_id!r} at {self.base_url}: environment variable "
                f"{self.api_key_env} is not set. Export it (export {self.api_key_env}=...) or, for a local server "
                f"that needs no key, set api_key_env: null in the backend config.")
        return key

    def request_body(self, conversation: Sequence[Message], params: SamplingParams, repeat: int = 0) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``; ``repeat`` = how many identical
        conversations precede this one in its batch (offsets the seed when sampling)."""
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [dict(message) for message in conversation],
            "temperature": params.temperature,
            "top_p": params.top_p,
            self.max_tokens_param: params.max_new_tokens,
        }
        if not params.greedy and params.seed is not None:
            body["seed"] = sample_seed(params.seed, repeat)
        if self.extra_body:
            body["extra_body"] = dict(self.extra_body)
        return body

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """One reply per conversation, in input order (see :class:`ChatBackend`).

        Raises:
            ConfigError: the API-key variable is unset, or the server rejects the key (401/403).
            BackendCallError: a request still failed after ``max_retries`` retries, or was refused.
        """
        if not batch:
            return []
        import openai

        started = time.perf_counter()
        # The key is passed inline (never a local variable: tracebacks printed with locals stay key-free).
        client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key(), timeout=self.timeout_s,
                               max_retries=0)
        try:
            workers = min(self.max_concurrency, len(batch))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-backend") as pool:
                futures = [pool.submit(self._complete_one, client, conversation, params, index, repeat)
                           for index, (conversation, repeat) in enumerate(zip(batch, repeat_indices(batch)))]
                try:
                    replies = [future.result() for future in futures]
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            client.close()
        with self._lock:
            self.usage["conversations"] += len(batch)
            self.usage["calls"] += 1
        logger.debug("%s @ %s: %d replies in %.2f s", self.model_id, self.base_url, len(batch),
                     time.perf_counter() - started)
        return replies

    def _complete_one(self, client: Any, conversation: Sequence[Message], params: SamplingParams, index: int,
                      repeat: int) -> str:
        """Send one request (conversation ``index`` of the batch) with retries; return the stripped
        reply text and count its usage."""
        import openai

        body = self.request_body(conversation, params, repeat)
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.usage["requests"] += 1
            try:
                response = client.chat.completions.create(**body)
            except openai.OpenAIError as error:
                retry = is_retryable(error) and attempt < self.max_retries
                if not retry:
                    raise self._failure(error, client.api_key, attempt + 1) from None
                delay = backoff_delay(attempt, self.backoff_s, self._rng)
                logger.warning("%s @ %s: %s (attempt %d/%d); retrying in %.2f s", self.model_id, self.base_url,
                               type(error).__name__, attempt + 1, self.max_retries + 1, delay)
                with self._lock:
                    self.usage["retries"] += 1
                time.sleep(delay)
                continue
            usage = getattr(response, "usage", None)
            with self._lock:
                self.usage["prompt_tokens"] += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.usage["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
            if not response.choices:
                raise BackendCallError(f"{self.model_id} @ {self.base_url} returned no choices for conversation "
                                       f"{index}; check that the server supports chat completions")
            return (response.choices[0].message.content or "").strip()
        raise AssertionError("unreachable: the loop returns or raises")

    def _failure(self, error: BaseException, key: str, attempts: int) -> ClarifyLabError:
        """A clear, key-free error for a request that will not be retried any more."""
        import openai

        detail = scrub(str(error), key)
        where = f"{self.model_id!r} at {self.base_url}"
        if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
            variable = self.api_key_env or "(none: api_key_env is null)"
            return ConfigError(f"the server refused the API key for {where} (HTTP {error.status_code}); check the "
                               f"key in environment variable {variable}. Server said: {detail}")
        if isinstance(error, openai.APIConnectionError):
            what = "timed out" if isinstance(error, openai.APITimeoutError) else "could not connect"
            return BackendCallError(f"{where}: {what} after {attempts} attempt(s) (timeout {self.timeout_s} s each). "
                                    f"Is the server running and is base_url right? ({type(error).__name__}: {detail})")
        status = getattr(error, "status_code", None)
        return BackendCallError(f"{where}: request failed after {attempts} attempt(s) with HTTP {status} "
                                f"({type(error).__name__}): {detail}")
