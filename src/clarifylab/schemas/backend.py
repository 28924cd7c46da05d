"""Keys of a backend node (``kind: transformers | openai``): ``simulator.backend``, ``classifier.backend``,
``teacher``. Backend nodes keep optional keys (``model_id``, ``cost``, ...), so they are checked by key set;
``backends/factory.py`` builds them and documents each key.
"""

from __future__ import annotations

COMMON_KEYS = frozenset({"kind", "cache", "namespace", "cost", "name"})
TRANSFORMERS_KEYS = COMMON_KEYS | {"model", "batch_size", "progress", "model_id", "share_prefixes"}
OPENAI_KEYS = COMMON_KEYS | {"base_url", "model", "api_key_env", "timeout_s", "max_retries", "backoff_s",
                             "max_concurrency", "extra_body", "max_tokens_param"}
BACKEND_KEYS: dict[str, frozenset[str]] = {"transformers": TRANSFORMERS_KEYS, "openai": OPENAI_KEYS}
