"""Build a :class:`ChatBackend` from a Hydra config node (``teacher``, ``simulator``, ``judge`` ...).

A local model (``kind: transformers``), loaded from a ``ModelSpec`` node::

    # conf/teacher/smollm2.yaml
    kind: transformers
    model:                                  # a ModelSpec node (see conf/student/*.yaml)
      _target_: clarifylab.models.ModelSpec
      source: smollm2_gguf
      dtype: float32
      role: teacher                         # names this node in error messages
    batch_size: 8                           # rows decoded together (continuous batching)
    progress: false                         # rich progress bar over conversations
    share_prefixes: true                    # prefill shared prompt prefixes once (backends/shared_prefill.py)
    cache: true                             # persistent call cache at <cache_dir>/calls/<namespace>.sqlite
    namespace: teacher_smollm2              # cache file name (and key component); default: kind
    model_id: null                          # cache-key model id; default: derived from the spec
    cost: null                              # {prompt_per_1k, completion_per_1k}: read by UsageMeter.track

The policy itself (the model being trained or evaluated, passed as ``policy=``)::

    kind: transformers
    model: policy                           # reuse build_backend(..., policy=...) instead of loading
    batch_size: 8
    cache: false                            # must stay false: the weights change under one model_id

Any OpenAI-compatible endpoint (vLLM, ``transformers serve``, llama.cpp server, hosted APIs)::

    # conf/teacher/openai.yaml
    kind: openai
    base_url: http://127.0.0.1:8000/v1      # endpoint root including /v1
    model: ???                              # served model name (also the cache-key model id)
    api_key_env: OPENAI_API_KEY             # NAME of the env variable holding the key; null = local, no key
    timeout_s: 60                           # per request
    max_retries: 5                          # retries on connection errors, 408/409/429, 5xx
    backoff_s: 1.0                          # exponential backoff base (x2 per retry, +-50% jitter)
    max_concurrency: 8                      # requests in flight
    extra_body: null                        # server-specific request fields, e.g. {top_k: 20}
    max_tokens_param: max_tokens            # or max_completion_tokens (OpenAI reasoning models)
    cache: true
    namespace: teacher_openai
    cost: {prompt_per_1k: 0.00015, completion_per_1k: 0.0006}

Unknown keys are an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from clarifylab.backends.base import ChatBackend
from clarifylab.backends.cache import CachedBackend
from clarifylab.backends.openai_backend import OpenAIBackend
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.errors import ConfigError
from clarifylab.models import ModelSpec, load_model_and_tokenizer
from clarifylab.schemas.backend import COMMON_KEYS, OPENAI_KEYS, TRANSFORMERS_KEYS

POLICY = "policy"


def _plain(node: Any) -> Any:
    """An OmegaConf node as plain Python containers (anything else unchanged)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _check_keys(cfg: Mapping[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"backend config (kind: {kind}) has unknown keys {unknown}; allowed: {sorted(allowed)}")


def cache_namespace(cfg: Mapping[str, Any]) -> str:
    """``namespace`` (or ``name``, or ``kind``), made safe as a file name."""
    raw = str(cfg.get("namespace") or cfg.get("name") or cfg["kind"])
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._") or "calls"


def spec_model_id(spec: Any) -> str:
    """A stable cache-key id for a ``ModelSpec``: what would load the same weights anywhere.

    ``hub`` -> the Hub id; ``local`` -> the absolute directory; ``smollm2_gguf`` ->
    ``smollm2_gguf:SmolLM2-135M-Instruct``; ``tiny`` -> ``tiny:seed=<seed>``; ``@<dtype>`` appended
    for non-float32 dtypes (they decode differently).
    """
    if spec.source == "local":
        base = str(Path(os.path.expanduser(spec.name_or_path)).resolve())
    elif spec.source == "smollm2_gguf":
        base = "smollm2_gguf:SmolLM2-135M-Instruct"
    elif spec.source == "tiny":
        base = f"tiny:seed={spec.seed}"
    else:
        base = str(spec.name_or_path)
    return base if spec.dtype == "float32" else f"{base}@{spec.dtype}"


def _model_spec(node: Any) -> Any:
    """A ``ModelSpec`` from an instance, a ``_target_`` node (Hydra instantiate) or a plain mapping."""
    if isinstance(node, ModelSpec):
        return node
    if isinstance(node, Mapping):
        if "_target_" in node:
            spec = instantiate(node)
        else:
            spec = ModelSpec.from_dict(node)
        if isinstance(spec, ModelSpec):
            return spec
    raise ConfigError(f"backend config (kind: transformers) model must be a ModelSpec node or 'policy', got {node!r}")


def _transformers_backend(cfg: Mapping[str, Any], cache_dir: str | os.PathLike[str], policy: Any) -> ChatBackend:
    options = {key: cfg[key] for key in ("batch_size", "progress", "share_prefixes") if key in cfg}
    model_node = cfg.get("model")
    if model_node is None:
        raise ConfigError("backend config (kind: transformers) needs model: a ModelSpec node, or model: policy")
    if model_node == POLICY:
        if policy is None:
            raise ConfigError("backend config says model: policy, but no policy was passed to build_backend")
        if cfg.get("cache"):
            raise ConfigError("backend config model: policy with cache: true: the policy's weights change during "
                              "training but cache keys only see its model_id; set cache: false")
        if isinstance(policy, ChatBackend):
            return policy
        model, tokenizer = policy
        return TransformersBackend(model, tokenizer, model_id=cfg.get("model_id"), **options)
    spec = _model_spec(model_node)
    model, tokenizer = load_model_and_tokenizer(spec, cache_dir)
    return TransformersBackend(model, tokenizer, model_id=cfg.get("model_id") or spec_model_id(spec), **options)


def _openai_backend(cfg: Mapping[str, Any]) -> ChatBackend:
    for required in ("base_url", "model"):
        if not cfg.get(required):
            raise ConfigError(f"backend config (kind: openai) needs {required}")
    options = {key: cfg[key] for key in OPENAI_KEYS - COMMON_KEYS if key in cfg}
    return OpenAIBackend(**options)


def build_backend(cfg: Mapping[str, Any], cache_dir: str | os.PathLike[str], policy: Any = None) -> ChatBackend:
    """The backend described by ``cfg`` (see the module docstring for the keys of each kind).

    Args:
        cfg: a config node with ``kind: transformers | openai``.
        cache_dir: ``paths.cache_dir``: converted models and ``calls/<namespace>.sqlite`` live here.
        policy: the policy for ``model: policy`` — a ChatBackend (returned as is) or a
            ``(model, tokenizer)`` pair.

    Returns:
        The backend, wrapped in a :class:`~clarifylab.backends.cache.CachedBackend` when ``cache: true``.
    """
    cfg = _plain(cfg)
    if not isinstance(cfg, Mapping) or "kind" not in cfg:
        raise ConfigError(f"backend config must be a mapping with kind: transformers | openai, got {cfg!r}")
    kind = cfg["kind"]
    if kind == "transformers":
        _check_keys(cfg, TRANSFORMERS_KEYS, kind)
        backend = _transformers_backend(cfg, cache_dir, policy)
    elif kind == "openai":
        _check_keys(cfg, OPENAI_KEYS, kind)
        backend = _openai_backend(cfg)
    else:
        raise ConfigError(f"backend config kind={kind!r} is not one of ['transformers', 'openai']")
    if cfg.get("cache", False):
        namespace = cache_namespace(cfg)
        backend = CachedBackend(backend, Path(cache_dir) / "calls" / f"{namespace}.sqlite", namespace=namespace)
    return backend
