"""Input checks the entry points run before any model loads: every path a run must read exists.

``check_inputs(cfg)`` looks at the keys a composed train / evaluate / generate config may hold and raises one
clear error naming the key, its value and what to do, seconds into the run instead of after a model has loaded.
Keys that a config does not have, or that are null, are skipped; the recipes still validate contents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.errors import ConfigError, DataNotFoundError

POLICY_HINT = "pass the `policy` folder of a finished train.py run (<run dir>/policy)"
PAIRS_HINT = ("build the pairs first (python generate.py task=act_pairs task.out_dir=<folder>; with an act_paper "
              "experiment pass act_pairs_dir=<folder>) or point the key at an existing JSONL of preference pairs")
# key -> (what must exist, what to do when it does not)
PATH_KEYS: dict[str, tuple[str, str]] = {
    "resume": ("file", "pass a Lightning checkpoint file, e.g. <run dir>/checkpoints/last.ckpt (DeepSpeed checkpoint "
                       "folders cannot be resumed yet), or resume=null"),
    "sft_policy": ("dir", POLICY_HINT + ", or sft_policy=null to start from the base student"),
    "trainer.init_policy": ("dir", POLICY_HINT + ", or trainer.init_policy=null to start from the base student"),
    "policy_dir": ("dir", POLICY_HINT + ", or policy_dir=null for the base student"),
    "trainer.pairs_path": ("file", PAIRS_HINT),
    "trainer.val_pairs_path": ("file", PAIRS_HINT + " (or null: no validation)"),
    "task.policy_dir": ("dir", POLICY_HINT + ", or task.policy_dir=null"),
    "task.spider_dir": ("dir", "set paths.data_dir (env CLARIFYLAB_DATA_DIR) to the folder holding spider/"),
}
DATASET_KEYS = ("dataset", "task.dataset")   # train/evaluate: dataset; generate task=act_pairs|dpo_dist_pairs


def _problem(path: Path, kind: str) -> str | None:
    """None when ``path`` is a ``kind`` ("file" | "dir"), else what is wrong with it."""
    if path.is_file() if kind == "file" else path.is_dir():
        return None
    return "does not exist" if not path.exists() else f"is not a {'file' if kind == 'file' else 'folder'}"


def dataset_inputs(node: Any) -> list[tuple[str, str, str]]:
    """(subkey, kind, hint) of what a dataset node reads: ``path`` (one native file) and ``dir`` (a folder; skipped
    when ``auto_generate`` builds it on first use). Datasets that generate.py builds (a conf/task/<name>.yaml exists)
    get the build command as the hint, the others the data folder setting."""
    name = node.get("name")
    if (PROJECT_ROOT / "conf" / "task" / f"{name}.yaml").is_file():
        hint = f"build it with `python generate.py task={name}`, or point the key at a built folder"
    else:
        hint = "set paths.data_dir (env CLARIFYLAB_DATA_DIR) to the folder holding the datasets, or the key itself"
    out = []
    if node.get("path") is not None:
        out.append(("path", "file", hint))
    if node.get("dir") is not None and not node.get("auto_generate", False):
        out.append(("dir", "dir", hint))
    return out


def check_inputs(cfg: DictConfig) -> None:
    """Raise before any model loads when a path the run needs is absent (see the module docstring).

    Raises:
        ConfigError: a mandatory path key (``???``) is unset.
        DataNotFoundError: ``<key>=<value> does not exist: <what to do>`` (or "is not a file" / "is not a folder").
    """
    checks: list[tuple[str, str, str]] = list((key, *spec) for key, spec in PATH_KEYS.items())
    for prefix in DATASET_KEYS:
        node = OmegaConf.select(cfg, prefix, default=None, throw_on_missing=False)
        if isinstance(node, DictConfig):
            checks += [(f"{prefix}.{sub}", kind, hint) for sub, kind, hint in dataset_inputs(node)]
    seen: set[str] = set()
    for key, kind, hint in checks:
        parent, _, leaf = key.rpartition(".")
        holder = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if not isinstance(holder, DictConfig) or leaf not in holder.keys():  # (`in holder` is False for ???)
            continue
        if OmegaConf.is_missing(holder, leaf):
            raise ConfigError(f"{key} is not set: pass {key}=<path> ({hint})")
        value = holder[leaf]
        if value is None or str(value) in seen:
            continue
        seen.add(str(value))  # sft_policy is also trainer.init_policy: report it once, under the key the user set
        problem = _problem(Path(str(value)), kind)
        if problem:
            raise DataNotFoundError(f"{key}={value} {problem}: {hint}")
