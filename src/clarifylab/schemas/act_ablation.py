"""``act_ablation`` group schema (``conf/act_ablation/*.yaml``): ACT's Table 5 component ablations (read by
``methods/act/recipe.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.schemas.fields import required


@dataclass
class ActAblationSchema:
    """Every act_ablation option sets all three switches (act_ablation=none: the full method)."""

    name: str = required()
    random_actions: bool = required()
    on_policy: bool = required()
    simulation: bool = required()
