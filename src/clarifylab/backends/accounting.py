"""Token, call, cache and cost accounting per role (policy, teacher, simulator, classifier, judge).

Usage::

    meter = UsageMeter()
    teacher = meter.track("teacher", build_backend(cfg.teacher, cache_dir), cost=cfg.teacher.get("cost"))
    teacher.complete(batch, params)          # counted under "teacher"
    wandb.log(meter.flat_summary())          # {"usage/teacher/prompt_tokens": ..., ...}
    rich.print(meter.table())

Tokens are the *spent* ones: the difference of the innermost backend's ``usage`` counters across a
call, so cache hits cost nothing. Cache hits/misses come from the difference of a
:class:`~clarifylab.backends.cache.CachedBackend`'s ``stats`` in the chain. Differences are exact
when calls on one underlying backend do not overlap in time (share a backend between two tracked
roles only if they are not called concurrently).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from rich.table import Table

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.errors import ConfigError

ROLES = ("policy", "teacher", "simulator", "classifier", "judge", "generator")
"""Conventional role names (any string is accepted)."""
TABLE_HEADERS = {"conversations": "convs", "backend_calls": "model calls", "prompt_tokens": "prompt tok",
                 "completion_tokens": "compl. tok", "cache_hits": "hits", "cache_misses": "misses"}


@dataclass
class RoleUsage:
    """Running totals of one role.

    Attributes:
        calls: ``complete`` calls made by the role.
        conversations: conversations answered (cache hits included).
        backend_calls: calls that reached the model backend (``usage["calls"]`` of the innermost
            backend; equals ``calls`` minus fully cached calls).
        prompt_tokens / completion_tokens: tokens the model backend processed / generated.
        cache_hits / cache_misses: conversations answered from / sent past the call cache.
        cost: ``prompt_tokens / 1000 * prompt_per_1k + completion_tokens / 1000 * completion_per_1k``
            in the currency of the configured prices (0 when none are given).
    """

    calls: int = 0
    conversations: int = 0
    backend_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cost: float = 0.0

    def add(self, other: RoleUsage) -> None:
        """Add ``other``'s totals to these."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclass(frozen=True)
class Price:
    """Cost per 1000 tokens (any currency; USD by convention)."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0

    @classmethod
    def from_config(cls, cost: Mapping[str, Any] | Price | None, role: str) -> Price:
        """From a ``{prompt_per_1k: ..., completion_per_1k: ...}`` node (``None`` = free)."""
        if cost is None:
            return cls()
        if isinstance(cost, Price):
            return cost
        unknown = sorted(set(cost) - {"prompt_per_1k", "completion_per_1k"})
        if unknown:
            raise ConfigError(f"{role}.cost has unknown keys {unknown}; use prompt_per_1k and completion_per_1k")
        price = cls(float(cost.get("prompt_per_1k", 0.0)), float(cost.get("completion_per_1k", 0.0)))
        if price.prompt_per_1k < 0 or price.completion_per_1k < 0:
            raise ConfigError(f"{role}.cost prices must be >= 0, got {dict(cost)}")
        return price

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """``prompt_tokens / 1000 * prompt_per_1k + completion_tokens / 1000 * completion_per_1k``."""
        return prompt_tokens / 1000 * self.prompt_per_1k + completion_tokens / 1000 * self.completion_per_1k


def backend_chain(backend: Any) -> list[Any]:
    """``backend`` followed by the backends it wraps (following ``.inner``)."""
    chain = [backend]
    while getattr(chain[-1], "inner", None) is not None and len(chain) < 16:
        chain.append(chain[-1].inner)
    return chain


def counters_of(backend: Any) -> dict[str, int]:
    """Snapshot of the counters the meter differences: the innermost ``usage`` dict (tokens and
    ``calls``) and the first ``stats`` dict (cache ``hits``/``misses``/``inner_calls``) along the
    chain. ``backend_calls`` is left out when neither dict says how often the model was called."""
    chain = backend_chain(backend)
    usage = next((b.usage for b in reversed(chain) if isinstance(getattr(b, "usage", None), Mapping)), None)
    stats = next((b.stats for b in chain if isinstance(getattr(b, "stats", None), Mapping)), None)
    counters = {
        "prompt_tokens": int((usage or {}).get("prompt_tokens", 0)),
        "completion_tokens": int((usage or {}).get("completion_tokens", 0)),
        "cache_hits": int((stats or {}).get("hits", 0)),
        "cache_misses": int((stats or {}).get("misses", 0)),
    }
    if usage is not None and "calls" in usage:
        counters["backend_calls"] = int(usage["calls"])
    elif stats is not None and "inner_calls" in stats:
        counters["backend_calls"] = int(stats["inner_calls"])
    return counters


class MeteredBackend:
    """A :class:`ChatBackend` that forwards to ``inner`` and books each call under ``role``.

    ``name`` and ``model_id`` are the inner backend's.
    """

    def __init__(self, inner: ChatBackend, role: str, meter: UsageMeter) -> None:
        self.inner = inner
        self.role = role
        self.meter = meter
        self.name = inner.name
        self.model_id = inner.model_id

    def __repr__(self) -> str:
        return f"MeteredBackend({self.inner!r}, role={self.role!r})"

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """Forward to ``inner.complete`` and record the call's usage."""
        before = counters_of(self.inner)
        replies = self.inner.complete(batch, params)
        after = counters_of(self.inner)
        delta = {name: after[name] - before[name] for name in after}
        delta.setdefault("backend_calls", 1 if batch else 0)  # a plain backend: every call reaches it
        self.meter.record(self.role, RoleUsage(calls=1, conversations=len(batch), **delta))
        return replies


class UsageMeter:
    """Aggregates usage per role; see the module docstring.

    Args:
        prices: optional ``{role: {prompt_per_1k, completion_per_1k}}``; ``track(..., cost=...)``
            overrides a role's entry.
    """

    def __init__(self, prices: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._prices = {role: Price.from_config(cost, role) for role, cost in (prices or {}).items()}
        self._usage: dict[str, RoleUsage] = {}
        self._lock = threading.Lock()

    def track(self, role: str, backend: ChatBackend, cost: Mapping[str, Any] | Price | None = None) -> MeteredBackend:
        """Wrap ``backend`` so every call is counted under ``role`` (priced with ``cost`` if given)."""
        if not isinstance(role, str) or not role:
            raise ConfigError(f"UsageMeter.track needs a role name such as {list(ROLES)}, got {role!r}")
        with self._lock:
            if cost is not None:
                self._prices[role] = Price.from_config(cost, role)
            self._usage.setdefault(role, RoleUsage())
        return MeteredBackend(backend, role, self)

    def record(self, role: str, usage: RoleUsage) -> None:
        """Add one call's usage to ``role`` (its cost is computed from the role's price)."""
        price = self._prices.get(role, Price())
        usage.cost = price.cost(usage.prompt_tokens, usage.completion_tokens)
        with self._lock:
            self._usage.setdefault(role, RoleUsage()).add(usage)

    def usage(self, role: str) -> RoleUsage:
        """A copy of ``role``'s totals (zeros for an unknown role)."""
        with self._lock:
            return RoleUsage(**asdict(self._usage.get(role, RoleUsage())))

    def summary(self) -> dict[str, dict[str, float | int]]:
        """``{role: {calls, conversations, backend_calls, prompt_tokens, completion_tokens,
        cache_hits, cache_misses, cost}, ..., "total": {...}}`` (JSON-ready)."""
        with self._lock:
            per_role = {role: asdict(usage) for role, usage in sorted(self._usage.items())}
        total = RoleUsage()
        for usage in per_role.values():
            total.add(RoleUsage(**usage))
        per_role["total"] = asdict(total)
        return per_role

    def flat_summary(self, prefix: str = "usage") -> dict[str, float | int]:
        """``{"<prefix>/<role>/<counter>": value}`` for W&B / metric loggers."""
        return {f"{prefix}/{role}/{name}": value
                for role, counters in self.summary().items() for name, value in counters.items()}

    def table(self, title: str = "LLM usage") -> Any:
        """A ``rich.table.Table`` with one row per role and a total row."""
        table = Table(title=title)
        columns = [field.name for field in fields(RoleUsage)]
        table.add_column("role")
        for name in columns:
            table.add_column(TABLE_HEADERS.get(name, name), justify="right")
        for role, counters in self.summary().items():
            cells = [f"{counters[name]:.4f}" if name == "cost" else f"{counters[name]:,}" for name in columns]
            table.add_row(role, *cells, style="bold" if role == "total" else None)
        return table
