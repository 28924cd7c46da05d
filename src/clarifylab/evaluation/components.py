"""Build the evaluation's roles from config nodes: the policy backend, the user simulator, the action
classifier. Every LLM-backed role is metered by one :class:`~clarifylab.backends.accounting.UsageMeter`.

Policy (``cfg.policy``, ``conf/policy/*.yaml``):

- ``kind: transformers`` — a local model: the policy saved by ``train.py`` at ``cfg.policy_dir`` when set,
  else the base ``cfg.student``. With ``cache: true`` replies are cached on disk under a model id that
  cannot go stale: the student's spec id (``backends.factory.spec_model_id``) or, for a trained policy,
  a hash of its saved files (:func:`policy_model_id`).
- ``kind: openai`` — any OpenAI-compatible endpoint, built by ``backends.factory.build_backend``.

A prompting baseline (``cfg.baseline.style`` set) wraps the metered policy backend
(:class:`~clarifylab.evaluation.baselines.PromptingBaseline`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.cache import CachedBackend
from clarifylab.backends.factory import build_backend, cache_namespace, spec_model_id
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.data.registry import load_dataset_split
from clarifylab.env.llm_action_classifier import FewShotLLMActionClassifier
from clarifylab.env.user_simulator import LLMUserSimulator, OracleUserSimulator
from clarifylab.errors import ConfigError, DataNotFoundError
from clarifylab.evaluation.baselines import BaselineSpec, PromptingBaseline
from clarifylab.models import load_model_and_tokenizer, load_policy

log = logging.getLogger(__name__)

POLICY_KINDS = ("transformers", "openai")
TRANSFORMERS_POLICY_KEYS = {"kind", "batch_size", "progress", "cache", "namespace"}


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def policy_model_id(policy_dir: str | Path) -> str:
    """``policy:<sha256 prefix>`` of every file in a saved policy directory (names and bytes), so a
    retrained policy in the same folder never hits the replies cached for the old one."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(policy_dir).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(policy_dir)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"policy:{digest.hexdigest()[:16]}"


def _cached(backend: ChatBackend, node: Mapping[str, Any], cache_dir: str | Path,
            default_namespace: str) -> ChatBackend:
    if not node["cache"]:
        return backend

    namespace = cache_namespace({"kind": "transformers", "namespace": node["namespace"] or default_namespace})
    return CachedBackend(backend, Path(cache_dir) / "calls" / f"{namespace}.sqlite", namespace=namespace)


def build_policy_backend(cfg: DictConfig) -> tuple[ChatBackend, dict[str, Any]]:
    """The policy's backend (uncached/cached as configured, not yet metered) and a description
    ``{"model": ..., "source": ...}`` for the result identity."""
    node = _plain(cfg.policy)
    kind = node["kind"]
    if kind == "openai":
        if cfg.policy_dir:
            raise ConfigError("policy_dir is set but policy=openai serves a model over HTTP; drop policy_dir or use "
                              "policy=student")
        described = {"model": node["model"], "source": f"openai {node['base_url']}"}
        return build_backend(node, cfg.paths.cache_dir), described
    if kind != "transformers":
        raise ConfigError(f"policy.kind={kind!r} is not one of {list(POLICY_KINDS)} (conf/policy/*.yaml)")
    unknown = sorted(set(node) - TRANSFORMERS_POLICY_KEYS)
    if unknown:
        raise ConfigError(f"policy (kind: transformers) has unknown keys {unknown}; allowed: "
                          f"{sorted(TRANSFORMERS_POLICY_KEYS)}")

    if cfg.policy_dir:
        policy_dir = Path(cfg.policy_dir)
        if not policy_dir.is_dir():
            raise DataNotFoundError(f"policy_dir={cfg.policy_dir!r} does not exist: pass the `policy` folder of a "
                                    f"train.py run (e.g. outputs/train/<run>/<time>/policy)")
        model, tokenizer, spec = load_policy(policy_dir, cfg.paths.cache_dir)
        model_id, source = policy_model_id(policy_dir), f"policy {policy_dir}"
    else:
        spec = hydra.utils.instantiate(cfg.student)
        model, tokenizer = load_model_and_tokenizer(spec, cfg.paths.cache_dir)
        model_id, source = spec_model_id(spec), f"base model ({spec.source}: {spec.name_or_path or 'bundled'})"
    backend = TransformersBackend(model, tokenizer, batch_size=node["batch_size"], progress=node["progress"],
                                  model_id=model_id)
    model_name = spec.name_or_path if spec.source in ("hub", "local") else spec.source
    return _cached(backend, node, cfg.paths.cache_dir, "policy"), {"model": model_name, "source": source,
                                                                    "model_id": model_id}


def _role_backend(node: Mapping[str, Any], role: str, cfg: DictConfig, meter: UsageMeter) -> ChatBackend:
    if "backend" not in node:
        raise ConfigError(f"{role}: an LLM {role} needs a `backend:` node (kind: transformers | openai)")
    return meter.track(role, build_backend(node["backend"], cfg.paths.cache_dir), cost=node["backend"].get("cost"))


def build_simulator(cfg: DictConfig, meter: UsageMeter) -> Any:
    """The user simulator U named by ``cfg.simulator.name``: ``oracle`` or ``llm``."""
    node = _plain(cfg.simulator)
    name = node["name"]
    if name == "oracle":
        return OracleUserSimulator()
    if name == "llm":
        return LLMUserSimulator(
            _role_backend(node, "simulator", cfg, meter),
            params=SamplingParams(max_new_tokens=node["max_new_tokens"]),
            summary_params=SamplingParams(max_new_tokens=node["summary_max_new_tokens"]),
            context_chars=node["context_chars"])
    raise ConfigError(f"simulator.name={name!r} is not one of ['oracle', 'llm'] (conf/simulator/*.yaml)")


def build_classifier(cfg: DictConfig, meter: UsageMeter) -> Any:
    """The action classifier A: a ``_target_`` node (e.g. the heuristic) is instantiated; ``name:
    llm_fewshot`` builds the few-shot LLM classifier with demonstrations from ``classifier.pool_split``."""
    node = _plain(cfg.classifier)
    if "_target_" in node:
        return hydra.utils.instantiate(cfg.classifier)
    if node.get("name") == "llm_fewshot":
        pool_split = node["pool_split"]
        pool = load_dataset_split(cfg.dataset, pool_split, cfg.paths) if pool_split else None
        return FewShotLLMActionClassifier(
            _role_backend(node, "classifier", cfg, meter), examples_pool=pool, k=node["k"], seed=node["seed"],
            params=SamplingParams(max_new_tokens=node["max_new_tokens"]), context_chars=node["context_chars"])
    raise ConfigError(f"classifier config needs a _target_ or name: llm_fewshot, got keys {sorted(node)} "
                      f"(conf/classifier/*.yaml)")


def build_baseline(cfg: DictConfig, policy: ChatBackend) -> ChatBackend:
    """Wrap ``policy`` in the prompting baseline of ``cfg.baseline`` (unchanged when ``style`` is null)."""
    node = _plain(cfg.baseline)
    if node["style"] is None:
        return policy

    spec = BaselineSpec(style=node["style"], conversations=node["conversations"], seed=node["seed"],
                        max_context_chars=node["max_context_chars"])
    pool = load_dataset_split(cfg.dataset, node["pool_split"] or cfg.dataset.train_split, cfg.paths)
    baseline = PromptingBaseline(policy, spec, pool)
    log.info("prompting baseline %s with %d demonstration conversations (seed %d)", spec.style,
             len(baseline.demonstrations), spec.seed)
    return baseline
