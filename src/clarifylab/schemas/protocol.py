"""``protocol`` group schemas (``conf/protocol/*.yaml``): which evaluation ``evaluate.py`` runs.

Every protocol names its ``runner`` (a function of the composed config returning a metrics dict) and the
``objective`` metric that evaluate.py returns; a method's protocol adds its own fields in a subclass here.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarifylab.schemas.fields import required


@dataclass
class ProtocolSchema:
    """The fields every evaluation protocol has."""

    name: str = required()
    runner: str = required()
    objective: str = required()


PROTOCOLS: dict[str, type] = {"multiturn": ProtocolSchema}
