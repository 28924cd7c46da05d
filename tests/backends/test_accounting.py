"""UsageMeter: per-role tokens, calls, cache hits/misses and cost, on hand-computed cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from rich.console import Console

from clarifylab.backends.accounting import Price, RoleUsage, UsageMeter
from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.cache import CachedBackend
from clarifylab.errors import ConfigError

PARAMS = SamplingParams(max_new_tokens=3)


class WordCountBackend:
    """Deterministic backend with a ``usage`` dict: a prompt costs one token per word of every
    message, a reply is always three tokens ("ok ok ok")."""

    name = "words"
    model_id = "words-1"

    def __init__(self) -> None:
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "conversations": 0, "calls": 0}

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        self.usage["prompt_tokens"] += sum(len(m["content"].split()) for c in batch for m in c)
        self.usage["completion_tokens"] += 3 * len(batch)
        self.usage["conversations"] += len(batch)
        self.usage["calls"] += 1
        return ["ok ok ok"] * len(batch)


class NoUsageBackend:
    """A backend that reports no usage at all."""

    name = "plain"
    model_id = "plain-1"

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        return ["x"] * len(batch)


def user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def test_tokens_calls_and_cost_per_role_on_a_hand_computed_case():
    meter = UsageMeter(prices={"teacher": {"prompt_per_1k": 0.5, "completion_per_1k": 2.0}})
    teacher = meter.track("teacher", WordCountBackend())
    judge = meter.track("judge", WordCountBackend(), cost={"prompt_per_1k": 1.0})
    assert isinstance(teacher, ChatBackend) and teacher.model_id == "words-1"
    assert teacher.complete([user("a b c"), user("d e")], PARAMS) == ["ok ok ok"] * 2  # 5 prompt, 6 completion
    teacher.complete([user("f")], PARAMS)  # 1 prompt, 3 completion
    judge.complete([user("g h")], PARAMS)  # 2 prompt, 3 completion
    summary = meter.summary()
    assert summary["teacher"] == {"calls": 2, "conversations": 3, "backend_calls": 2, "prompt_tokens": 6,
                                  "completion_tokens": 9, "cache_hits": 0, "cache_misses": 0,
                                  "cost": pytest.approx(6 / 1000 * 0.5 + 9 / 1000 * 2.0)}
    assert summary["judge"]["cost"] == pytest.approx(2 / 1000 * 1.0)
    assert summary["total"]["prompt_tokens"] == 8 and summary["total"]["calls"] == 3
    assert summary["total"]["cost"] == pytest.approx(0.021 + 0.002)
    assert meter.flat_summary()["usage/teacher/completion_tokens"] == 9


def test_cache_hits_are_counted_and_cost_nothing(tmp_path):
    inner = WordCountBackend()
    meter = UsageMeter(prices={"simulator": {"prompt_per_1k": 1.0, "completion_per_1k": 1.0}})
    simulator = meter.track("simulator", CachedBackend(inner, tmp_path / "calls.sqlite"))
    simulator.complete([user("a b"), user("c")], PARAMS)
    simulator.complete([user("a b"), user("c")], PARAMS)  # all hits: no tokens, no model call
    simulator.complete([user("a b"), user("d e f")], PARAMS)  # one hit, one miss (3 prompt, 3 completion)
    assert meter.usage("simulator") == RoleUsage(calls=3, conversations=6, backend_calls=2, prompt_tokens=6,
                                                 completion_tokens=9, cache_hits=3, cache_misses=3,
                                                 cost=pytest.approx(15 / 1000))


def test_backend_without_usage_counts_every_call_as_a_model_call():
    meter = UsageMeter()
    plain = meter.track("classifier", NoUsageBackend())
    plain.complete([user("a")] * 4, PARAMS)
    plain.complete([], PARAMS)
    assert meter.usage("classifier") == RoleUsage(calls=2, conversations=4, backend_calls=1)


def test_table_lists_every_role_and_the_total():
    meter = UsageMeter()
    meter.track("policy", WordCountBackend()).complete([user("one two three four")], PARAMS)
    meter.track("teacher", NoUsageBackend())
    console = Console(width=160, record=True)
    console.print(meter.table())
    text = console.export_text()
    assert [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")] == \
        ["policy", "teacher", "total"]
    assert "prompt tok" in text


def test_price_validation_names_the_role():
    assert Price.from_config(None, "judge").cost(1000, 1000) == 0.0
    with pytest.raises(ConfigError, match=r"teacher\.cost has unknown keys \['input'\]"):
        Price.from_config({"input": 1.0}, "teacher")
    with pytest.raises(ConfigError, match="must be >= 0"):
        UsageMeter(prices={"judge": {"prompt_per_1k": -1}})
    with pytest.raises(ConfigError, match="role name"):
        UsageMeter().track("", NoUsageBackend())
