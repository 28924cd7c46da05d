"""Config nodes -> what the data builders need: plain containers and metered teacher backends.

Shared by ``generate.py`` tasks that call teacher models (``act_pairs``, ``dpo_dist_pairs``, ``ambigsql``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend
from clarifylab.backends.factory import build_backend
from clarifylab.errors import ConfigError


def plain(node: Any) -> Any:
    """A resolved plain ``dict``/``list`` for an OmegaConf node; anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def build_teacher(node: Any, cache_dir: str, meter: UsageMeter, label: str, hint: str) -> ChatBackend:
    """The backend of a teacher node (conf/teacher/*.yaml), tracked by ``meter`` under ``label``.

    Args:
        node: a backend node with ``kind: transformers | openai`` (see ``backends.factory``).
        cache_dir: root of the persistent call caches (``paths.cache_dir``).
        meter: usage accounting; calls and tokens (and cost, when the node has ``cost``) land under ``label``.
        label: the role in usage summaries and error messages (``teacher``, ``strong``, ``weak`` ...).
        hint: the command line to show when the node is missing, e.g.
            ``python generate.py task=act_pairs teacher@task.teacher=smollm2``.

    Raises:
        ConfigError: ``node`` is not a backend node.
    """
    node = plain(node)
    if not isinstance(node, Mapping) or "kind" not in node:
        raise ConfigError(f"the {label} model is not configured: choose a backend, e.g. `{hint}` (conf/teacher/*.yaml "
                          f"with kind: transformers | openai); got {label}={node!r}")
    return meter.track(label, build_backend(node, cache_dir), cost=node.get("cost"))
