"""``hardware`` group schema (``conf/hardware/*.yaml``): what ``pl.Trainer`` is given for devices and precision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarifylab.schemas.fields import required


@dataclass
class HardwareSchema:
    """Every hardware option sets all five keys."""

    accelerator: str = required()
    devices: Any = required()       # int | "auto" | list of device ids
    num_nodes: int = required()
    strategy: Any = required()      # a Lightning strategy name, or a node with _target_ (DeepSpeed)
    precision: Any = required()     # "32-true" | "bf16-mixed" | ... (Lightning also takes 32, 16)
