"""Typed schemas of the config groups and the check that runs before anything loads (``validate_config``).

One module per group: ``trainer``, ``dataset``, ``simulator``, ``classifier``, ``hardware`` (dataclasses: names
and types; the values live in ``conf/<group>/*.yaml``), ``backend`` (the keys of a backend node); ``student`` and
``task`` nodes are checked against their ``_target_``. ``validate`` runs the checks.
"""

from clarifylab.schemas.validate import validate_config

__all__ = ["validate_config"]
