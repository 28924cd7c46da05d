"""Check a composed config against the group schemas before anything runs: one line per mistake.

``validate_config(cfg)`` runs first inside ``config.entry_point``. For every config group the defaults list
selected (``trainer``, ``dataset``, ``student``, ``simulator``, ``classifier``, ``hardware``, ``task``,
``baseline``, ``ablation`` (TS strategies), ``act_ablation``, ``policy``, ``teacher``, ``protocol``, and the same groups nested in a task, e.g. ``task.dataset``)
it checks, in this order:

1. keys: every key of the node is a field of its schema (a stray or misspelled key fails, naming the full key
   and listing the valid ones) and every schema field is present;
2. types: the node merged into ``OmegaConf.structured(schema)`` (a string where a float belongs fails);
3. choices: fields declared with ``one_of`` hold one of their values;
4. mandatory values: no ``???`` is left unset.

Then the entry config's own top-level keys (``seed``, ``resume``, ``policy_dir``, ...) against
``schemas/entry.py`` (:func:`check_top_level`).

A node with ``_target_`` (``student``, ``classifier=heuristic``, ``task``) is checked against its target: the
fields of a dataclass target (``ModelSpec``), else the parameters of the function.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clarifylab.errors import ConfigError
from clarifylab.schemas.ablation import AblationSchema
from clarifylab.schemas.act_ablation import ActAblationSchema
from clarifylab.schemas.backend import BACKEND_KEYS
from clarifylab.schemas.baseline import BaselineSchema
from clarifylab.schemas.classifier import CLASSIFIERS
from clarifylab.schemas.dataset import DATASETS
from clarifylab.schemas.entry import ENTRY_CONFIGS
from clarifylab.schemas.hardware import HardwareSchema
from clarifylab.schemas.policy import LocalPolicySchema
from clarifylab.schemas.protocol import PROTOCOLS
from clarifylab.schemas.simulator import SIMULATORS
from clarifylab.schemas.trainer import TRAINERS

HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})


class _Missing:
    """A ``???`` value, or an interpolation that points at one."""

    def __init__(self, text: str) -> None:
        self.text = text


def plain(node: Any, only: list[str] | None = None) -> Any:
    """A config node as plain containers, each interpolation resolved where it can be (else kept as text) and
    each mandatory-missing value (``???``, or an interpolation to one) as a :class:`_Missing`; ``only``: just
    these keys of a mapping node."""
    if isinstance(node, DictConfig):
        out = {}
        for key in node.keys() if only is None else only:
            raw = node._get_node(key)  # noqa: SLF001 - the only way to read a value without resolving it
            if raw is not None and raw._is_missing():  # noqa: SLF001
                out[key] = _Missing("???")
                continue
            try:
                out[key] = plain(node[key])
            except OmegaConfBaseException as error:
                text = str(raw._value()) if raw is not None else ""  # noqa: SLF001
                out[key] = _Missing(text) if "missing" in type(error).__name__.lower() else text
        return out
    if isinstance(node, ListConfig):
        return [plain(item) for item in node]
    return node


def _strip(value: Any) -> Any:
    """``value`` without Hydra's ``_target_``-style keys and with ``_Missing`` as ``???`` (for the type merge)."""
    if isinstance(value, Mapping):
        return {key: _strip(item) for key, item in value.items() if key not in HYDRA_KEYS}
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return MISSING if isinstance(value, _Missing) else value


def _at(path: str) -> str:
    """``path`` as the prefix of a key under it (``"trainer."``; ``""`` for an entry config's top level)."""
    return f"{path}." if path else ""


def _unknown_key(path: str, key: str, where: str, valid: list[str]) -> ConfigError:
    return ConfigError(f"{_at(path)}{key} is not an option of {where} (misspelled or stray key: fix or remove it); "
                       f"valid keys: {', '.join(valid)}")


def _check_keys(value: Mapping[str, Any], valid: list[str], required: list[str], path: str, where: str) -> None:
    for key in value:
        if key not in HYDRA_KEYS and key not in valid:
            raise _unknown_key(path, key, where, valid)
    for key in required:
        if key not in value:
            raise ConfigError(f"{_at(path)}{key} is missing from {where}: set it in the option's YAML (value and "
                              f"comment), or pass +{_at(path)}{key}=... on the command line")


def _nested_dataclass(annotation: Any) -> type | None:
    """The dataclass inside ``X`` or ``Optional[X]``, else None."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def check_dataclass(value: Mapping[str, Any], schema: type, path: str, where: str) -> None:
    """Keys, types, choices and missing values of ``value`` against the dataclass ``schema``."""
    fields = {field.name: field for field in dataclasses.fields(schema)}
    required = [name for name, field in fields.items() if field.default is MISSING
                or (field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)]
    _check_keys(value, sorted(fields), required, path, where)
    hints = typing.get_type_hints(schema)
    for name, field in fields.items():
        item = value.get(name)
        nested = _nested_dataclass(hints[name])
        if nested is not None and isinstance(item, Mapping):
            check_dataclass(item, nested, f"{_at(path)}{name}", f"{_at(path)}{name}")
        if field.metadata.get("backend") and isinstance(item, Mapping):
            check_backend(item, f"{_at(path)}{name}")
    try:
        OmegaConf.merge(OmegaConf.structured(schema), _strip(value))
    except OmegaConfBaseException as error:
        first = str(error.msg or error).splitlines()[0]
        key = f"{_at(path)}{error.full_key}" if error.full_key else path
        raise ConfigError(f"{key}: {first} ({where})") from None
    for name, field in fields.items():
        choices = field.metadata.get("choices")
        item = value.get(name)
        if choices and not isinstance(item, _Missing) and not _is_interpolation(item) and item not in choices:
            raise ConfigError(f"{_at(path)}{name}={item!r} is not one of {list(choices)} ({where})")
    _check_missing(value, path, where)


def _is_interpolation(item: Any) -> bool:
    return isinstance(item, str) and "${" in item


def _check_missing(value: Any, path: str, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_missing(item, f"{_at(path)}{key}", where)
    elif isinstance(value, _Missing):
        via = "" if value.text == "???" else f" (through {value.text})"
        raise ConfigError(f"{path} must be set{via}: it is ??? in {where}; pass {path}=... on the command line")


def check_backend(value: Mapping[str, Any], path: str) -> None:
    """A backend node: ``kind`` names one of ``BACKEND_KEYS`` and every key belongs to that kind."""
    kind = value.get("kind")
    if kind not in BACKEND_KEYS:
        raise ConfigError(f"{_at(path)}kind={kind!r} is not one of {sorted(BACKEND_KEYS)}")
    valid = sorted(BACKEND_KEYS[kind])
    _check_keys(value, valid, ["kind"], path, f"a backend of kind {kind}")
    model = value.get("model")
    if isinstance(model, Mapping) and "_target_" in model:
        check_target(model, f"{_at(path)}model")


def check_target(value: Mapping[str, Any], path: str) -> None:
    """A ``_target_`` node: a dataclass target's fields, else the callable's parameters."""
    name = value["_target_"]
    where = f"{path} ({name})"
    try:
        target = get_object(str(name))
    except Exception as error:  # noqa: BLE001 - any import failure is a config error here
        raise ConfigError(f"{_at(path)}_target_={name!r} cannot be imported ({type(error).__name__}): "
                          "check the dotted path") from None
    if dataclasses.is_dataclass(target):
        check_dataclass(value, target, path, where)
        return
    parameters = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY)
    named = [p for p in parameters if p.kind not in skipped]
    required = [p.name for p in named if p.default is inspect.Parameter.empty]
    _check_keys(value, sorted(p.name for p in named), required, path, where)
    _check_missing(value, path, where)


def _by_name(schemas: dict[str, type], group: str, what: str) -> Callable[[Mapping[str, Any], str], None]:
    def check(value: Mapping[str, Any], path: str) -> None:
        name = value.get("name")
        if name not in schemas:
            raise ConfigError(f"{_at(path)}name={name!r} is not a known {what}; choose one of {sorted(schemas)} "
                              f"(e.g. `{group}={sorted(schemas)[0]}`)")
        check_dataclass(value, schemas[name], path, f"{group}={name}")

    return check


def _classifier(value: Mapping[str, Any], path: str) -> None:
    if "_target_" in value:
        check_target(value, path)
    else:
        _by_name(CLASSIFIERS, "classifier", "classifier")(value, path)


def _policy(value: Mapping[str, Any], path: str) -> None:
    if value.get("kind") == "transformers":
        check_dataclass(value, LocalPolicySchema, path, "policy (kind: transformers)")
    else:
        check_backend(value, path)
        _check_missing(value, path, "policy")


def _teacher(value: Mapping[str, Any], path: str) -> None:
    if "kind" in value:
        check_backend(value, path)
        _check_missing(value, path, f"teacher={value.get('name')}")
    else:
        _check_keys(value, ["name"], ["name"], path, "teacher=none (a backend node needs kind: transformers | openai)")


def _student(value: Mapping[str, Any], path: str) -> None:
    if "_target_" not in value:
        raise ConfigError(f"{path} needs a _target_ (clarifylab.models.ModelSpec; see conf/student/*.yaml)")
    check_target(value, path)


# group -> check(plain node, path). Ordered: the cheap groups first, the ones that import a target last.
GROUP_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "trainer": _by_name(TRAINERS, "trainer", "trainer"),
    "dataset": _by_name(DATASETS, "dataset", "dataset"),
    "hardware": lambda value, path: check_dataclass(value, HardwareSchema, path, "hardware"),
    "simulator": _by_name(SIMULATORS, "simulator", "simulator"),
    "classifier": _classifier,
    "student": _student,
    "task": lambda value, path: check_target(value, path),
    "baseline": lambda value, path: check_dataclass(value, BaselineSchema, path, "baseline"),
    "ablation": lambda value, path: check_dataclass(value, AblationSchema, path, "ablation"),
    "act_ablation": lambda value, path: check_dataclass(value, ActAblationSchema, path, "act_ablation"),
    "policy": _policy,
    "teacher": _teacher,
    "protocol": _by_name(PROTOCOLS, "protocol", "evaluation protocol"),
}


def selected_groups(cfg: DictConfig) -> list[tuple[str, str]]:
    """``(group, package)`` of each schema group the defaults list chose (``dataset`` at ``task.dataset`` ...);
    without a Hydra run (tests, notebooks) every schema group present at the top level."""
    if HydraConfig.initialized():
        pairs = []
        for choice in HydraConfig.get().runtime.choices:
            group, _, package = str(choice).partition("@")
            pairs.append((group, package or group))
    else:
        pairs = [(group, group) for group in GROUP_CHECKS if group in cfg]
    order = list(GROUP_CHECKS)
    return sorted(((g, p) for g, p in pairs if g in GROUP_CHECKS), key=lambda pair: (order.index(pair[0]), pair[1]))


def check_top_level(cfg: DictConfig) -> None:
    """The keys beside the group nodes (``seed``, ``policy_dir``, ...) against the entry config's schema
    (``schemas/entry.py``, by Hydra's ``job.config_name``; nothing to check outside a Hydra run or for another
    config). A stray key reads ``polcy_dir is not an option of evaluate.yaml ...; valid keys: ...``."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.config_name
    if name not in ENTRY_CONFIGS:
        return
    groups = {(str(choice).partition("@")[2] or str(choice)).split(".")[0].split("/")[0]
              for choice in hydra_cfg.runtime.choices}
    keys = [key for key in cfg.keys() if key != "hydra" and key not in groups]
    values = plain(cfg, only=keys)
    experiment = hydra_cfg.runtime.choices.get("experiment")
    where = f"{name}.yaml" + (f" with experiment={experiment}" if experiment else "")
    check_dataclass(values, ENTRY_CONFIGS[name], "", where)


def validate_config(cfg: DictConfig) -> None:
    """Raise one ``ConfigError`` line for the first schema violation in a selected group, then in the entry
    config's own keys (see the module doc)."""
    for group, package in selected_groups(cfg):
        node = OmegaConf.select(cfg, package, throw_on_missing=False)
        if not isinstance(node, DictConfig):
            raise ConfigError(f"{package} must be a mapping (conf/{group}/*.yaml), got {node!r}")
        GROUP_CHECKS[group](plain(node), package)
    check_top_level(cfg)
