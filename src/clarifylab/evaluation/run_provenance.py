"""What an evaluation run records about where its numbers came from (``metrics.json``): the data file and
its content hash, the Hydra overrides and config choices, the code version, and the training run of an
evaluated policy (trainer, ACT component ablation, pair source).

These fields key result rows (:data:`clarifylab.evaluation.tables.GROUP_BY`): two runs are averaged only
when they differ in nothing but their seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clarifylab.config import PROJECT_ROOT


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_file(dataset_cfg: Any, split: str) -> Path | None:
    """The file the loader of ``dataset_cfg`` reads ``split`` from (``clarifylab.data.registry``):

    - ``path`` set (PACIFIC, Abg-CoQA, TAT-QA: one native file split by conversation) -> that file;
    - ``tsv`` set (WTQ) -> ``tsv``, relative to ``dir`` unless absolute (the table CSVs are not included);
    - ``dir`` set (the generated synthetic corpus, AmbigSQL) -> ``<dir>/<split>.jsonl``;
    - else None.
    """
    node = dataset_cfg if OmegaConf.is_config(dataset_cfg) else OmegaConf.create(dict(dataset_cfg))
    path, directory, tsv = (OmegaConf.select(node, key, default=None) for key in ("path", "dir", "tsv"))
    if path:
        return Path(path)
    if tsv:
        return Path(tsv) if Path(tsv).is_absolute() else Path(directory or ".") / tsv
    if directory:
        return Path(directory) / f"{split}.jsonl"
    return None


def data_identity(dataset_cfg: Any, split: str) -> dict[str, str | None]:
    """``{"data_file": absolute path, "data_sha256": hash of its bytes}`` (both None when the dataset
    names no file; the hash None when the file does not exist). Call it after loading, so a corpus
    generated on first use is hashed as written."""
    path = data_file(dataset_cfg, split)
    if path is None:
        return {"data_file": None, "data_sha256": None}
    return {"data_file": os.path.abspath(path), "data_sha256": file_sha256(path) if path.is_file() else None}


def code_version(root: str | os.PathLike[str] = PROJECT_ROOT) -> str | None:
    """``git rev-parse HEAD`` of ``root``, with ``+dirty`` when tracked files differ from it; None
    outside a git checkout (or without git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def hydra_overrides() -> dict[str, Any]:
    """``{"overrides": hydra.overrides.task, "choices": hydra.runtime.choices}`` of the running Hydra job
    (the command-line overrides and the option chosen in every config group); empty outside Hydra."""
    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    choices = OmegaConf.to_container(hydra_cfg.runtime.choices, resolve=True)
    return {"overrides": list(hydra_cfg.overrides.task),
            "choices": {k: v for k, v in sorted(choices.items()) if not k.startswith("hydra/")}}


def _without_hydra_resolver(node: Any) -> Any:
    """A plain copy of a saved config in which every ``${hydra:...}`` is escaped (kept as its text): in this
    process that resolver would answer for the current run, not for the run that saved the config."""
    if isinstance(node, dict):
        return {key: _without_hydra_resolver(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_hydra_resolver(value) for value in node]
    return node.replace("${hydra:", "\\${hydra:") if isinstance(node, str) else node


def _train_value(train_cfg: DictConfig, key: str) -> Any:
    """``key`` of a saved train config, resolved where possible (``${hydra:...}`` stays text, see
    :func:`_without_hydra_resolver`; other resolvers, e.g. ``oc.env`` in ``paths``, resolve in this
    process); None when absent or unresolvable."""
    try:
        return OmegaConf.select(train_cfg, key, default=None, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return None


def trained_run_info(policy_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The train.py run that saved ``policy_dir``, read from its run folder ``<policy_dir>/..`` (the parent
    taken by name, so IRPO's ``<run>/policy`` link finds ``<run>``): the config from ``csv/hparams.yaml``
    (written by the run's CSV logger, resolved in the train process, so ``${paths.generated_dir}`` is what
    the run used), else ``.hydra/config.yaml`` (unresolved; resolved here); ``.hydra/overrides.yaml``.

    Returns:
        ``approach`` (``trainer.name``, ``"trained"`` when unknown), ``conversations`` (the training
        ``dataset.conversations``), ``trainer``, ``act_ablation`` (``act_ablation.name``; ``ablation.name`` in runs from before the
        rename), ``train_dataset``,
        ``pairs`` (``trainer.pairs_path``), ``pseudo_labels`` (``params.pseudo_labels`` of the pairs'
        ``manifest.json``, None without one), ``train_seed`` and ``train_overrides`` (None when unknown).
    """
    run_dir = Path(os.path.abspath(policy_dir)).parent
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    config_path = next((p for p in (run_dir / "csv" / "hparams.yaml", run_dir / ".hydra" / "config.yaml")
                        if p.is_file()), None)
    train_cfg = OmegaConf.create(_without_hydra_resolver(
        OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)) if config_path else {})
    name = _train_value(train_cfg, "trainer.name")
    conversations = _train_value(train_cfg, "dataset.conversations")
    pairs = _train_value(train_cfg, "trainer.pairs_path")
    pseudo_labels = None
    if pairs and (Path(pairs).parent / "manifest.json").is_file():
        manifest = json.loads((Path(pairs).parent / "manifest.json").read_text(encoding="utf-8"))
        pseudo_labels = (manifest.get("params") or {}).get("pseudo_labels") if isinstance(manifest, dict) else None
    seed = _train_value(train_cfg, "seed")
    return {"approach": str(name) if name else "trained",
            "conversations": int(conversations) if isinstance(conversations, int) else None,
            "trainer": str(name) if name else None,
            "act_ablation": (_train_value(train_cfg, "act_ablation.name")
                             or _train_value(train_cfg, "ablation.name")),
            "train_dataset": _train_value(train_cfg, "dataset.name"),
            "pairs": str(pairs) if pairs else None,
            "pseudo_labels": pseudo_labels,
            "train_seed": int(seed) if isinstance(seed, int) else None,
            "train_overrides": ([str(o) for o in OmegaConf.load(overrides_path)] if overrides_path.is_file()
                                else None)}
