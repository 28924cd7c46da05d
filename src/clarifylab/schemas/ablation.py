"""``ablation`` group schema (``conf/ablation/*.yaml``): ACT's Table 5 switches (read by ``methods/act/recipe.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.schemas.fields import required


@dataclass
class AblationSchema:
    """Every ablation option sets all three switches (ablation=none: the full method)."""

    name: str = required()
    random_actions: bool = required()
    on_policy: bool = required()
    simulation: bool = required()
