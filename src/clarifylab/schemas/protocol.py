"""``protocol`` group schemas (``conf/protocol/*.yaml``): which evaluation ``evaluate.py`` runs.

Every protocol names its ``runner`` (a function of the composed config returning a metrics dict) and the
``objective`` metric that evaluate.py returns; a method's protocol adds its own fields in a subclass here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from clarifylab.schemas.fields import backend_node, one_of, required


@dataclass
class ProtocolSchema:
    """The fields every evaluation protocol has."""

    name: str = required()
    runner: str = required()
    objective: str = required()


@dataclass
class SMLShardedSchema(ProtocolSchema):
    """protocol=sml_sharded: SML's underspecified multi-turn evaluation (methods/sml/sharded_eval.py)."""

    max_turns: int = required()
    budgets: list[int] = required()
    answer_logprob: bool = required()
    problem_seed: int = required()


@dataclass
class StarGateWinRateSchema(ProtocolSchema):
    """protocol=star_gate_win_rate: win rates of a star-gate run's models against m0 (methods/star_gate)."""

    train_dir: Optional[str] = required()
    max_turns: int = required()
    question_max_new_tokens: int = required()
    answer_max_new_tokens: int = required()
    roleplayer_max_new_tokens: int = required()
    judge_max_new_tokens: int = required()
    batch_size: int = required()
    bootstrap_samples: int = required()
    ci_level: float = required()
    score_logprobs: bool = required()
    served_models: Optional[dict[str, Any]] = required()
    roleplayer: Any = backend_node()
    judge: Any = backend_node()


@dataclass
class TSBenchmarkSchema(ProtocolSchema):
    """protocol=ts_benchmark (``methods/ts/benchmark.py``): the teacher-student benchmark's judge of clarifying
    questions (``rule`` | ``teacher``) and, for ``teacher``, its backend node (else null); how a reply is read as
    correct (``official`` | ``contains``: ``methods/ts/curriculum.Scorer``)."""

    judge: str = one_of("rule", "teacher")
    teacher: Any = backend_node()
    match: str = one_of("official", "contains")


PROTOCOLS: dict[str, type] = {"star_gate_win_rate": StarGateWinRateSchema, "multiturn": ProtocolSchema, "fully_specified": ProtocolSchema, "ts_benchmark": TSBenchmarkSchema, "sml_sharded": SMLShardedSchema}
