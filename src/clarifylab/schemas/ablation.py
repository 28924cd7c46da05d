"""``ablation`` group schema (``conf/ablation/*.yaml``): the teacher-student curriculum's information-ablation
strategies (Poelitz & McKenna 2025; read by ``data/ablation_strategies.py`` and ``methods/ts/``).

ACT's component ablations (Table 5) are the ``act_ablation`` group (``schemas/act_ablation.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.schemas.fields import one_of, required


@dataclass
class AblationSchema:
    """Which strategies a curriculum build applies, and how the two configurable ones act.

    ``strategies`` is a list drawn from ``column``, ``row``, ``value``, ``question``
    (checked by ``data.ablation_strategies.check_strategies``)."""

    name: str = required()
    strategies: list[str] = required()
    value_mode: str = one_of("remove", "alter")
    question_mode: str = one_of("rule", "teacher")
