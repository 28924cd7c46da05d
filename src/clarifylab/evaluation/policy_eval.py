"""``evaluate.py``'s recipe: build the roles from config, run the multi-turn evaluation, write and log it.

The row identity written to ``metrics.json`` (what :mod:`clarifylab.evaluation.tables` groups by):

- ``label``: ``cfg.label``;
- ``model``: ``cfg.model``, else the base model (Hub id / directory / ``smollm2_gguf`` / ``tiny``) or the
  served model name;
- ``approach``: ``cfg.approach``, else the baseline style (``standard``/``cot``/``proactive``), else for a
  trained policy the ``trainer.name`` recorded in its train run (``<policy_dir>/../.hydra/config.yaml``,
  ``trained`` if absent), else ``base``;
- ``conversations``: ``cfg.conversations``, else a baseline's number of in-context conversations, else a
  trained policy's ``dataset.conversations`` (its training data setting), else None.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def trained_run_info(policy_dir: str | Path) -> dict[str, Any]:
    """``{"approach": trainer.name, "conversations": dataset.conversations}`` of the train.py run that
    saved ``policy_dir`` (read from its ``../.hydra/config.yaml``); ``approach`` is ``"trained"`` and
    ``conversations`` None when the file or key is missing."""
    # abspath, not resolve: IRPO's <run dir>/policy is a symlink into iter_<t>/, but the run's config is <run dir>/.hydra
    config_path = Path(os.path.abspath(policy_dir)).parent / ".hydra" / "config.yaml"
    train_cfg = OmegaConf.load(config_path) if config_path.is_file() else OmegaConf.create()
    name = OmegaConf.select(train_cfg, "trainer.name", default=None)
    conversations = OmegaConf.select(train_cfg, "dataset.conversations", default=None)
    return {"approach": str(name) if name else "trained",
            "conversations": int(conversations) if isinstance(conversations, int) else None}


def run_identity(cfg: DictConfig, described: dict[str, Any]) -> dict[str, Any]:
    """``label``, ``model``, ``approach``, ``conversations``, ``dataset``, ``split``, ``seed`` (module docstring)."""
    style = OmegaConf.select(cfg, "baseline.style", default=None)
    trained = trained_run_info(cfg.policy_dir) if cfg.get("policy_dir") else {}
    if cfg.get("approach"):
        approach = str(cfg.approach)
    elif style:
        approach = str(style)
    else:
        approach = trained.get("approach", "base")
    conversations = cfg.get("conversations")
    if conversations is None:
        conversations = int(cfg.baseline.conversations) if style else trained.get("conversations")
    return {"label": str(cfg.label), "model": str(cfg.get("model") or described["model"]), "approach": approach,
            "conversations": conversations, "dataset": str(cfg.dataset.name), "split": str(cfg.split),
            "seed": int(cfg.seed)}


def run_policy_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one policy on ``cfg.split`` of ``cfg.dataset``; returns the ``metrics.json`` object."""
    import random

    from clarifylab.backends.accounting import UsageMeter
    from clarifylab.backends.base import SamplingParams
    from clarifylab.data.registry import load_dataset_split
    from clarifylab.evaluation.components import (
        build_baseline,
        build_classifier,
        build_policy_backend,
        build_simulator,
    )
    from clarifylab.evaluation.evaluator import evaluate_policy
    from clarifylab.evaluation.experiment_log import log_evaluation
    from clarifylab.evaluation.outputs import write_eval_outputs
    from clarifylab.evaluation.tables import PAPER_COLUMNS, rich_table, wide_console

    random.seed(cfg.seed)
    examples = load_dataset_split(cfg.dataset, cfg.split, cfg.paths, cfg.max_examples)
    meter = UsageMeter()
    backend, described = build_policy_backend(cfg)
    policy = build_baseline(cfg, meter.track("policy", backend, cost=cfg.policy.get("cost")))
    simulator = build_simulator(cfg, meter)
    classifier = build_classifier(cfg, meter)
    identity = run_identity(cfg, described)
    log.info("evaluating %s (%s) on %s/%s: %d examples", identity["label"], described["source"], cfg.dataset.name,
             cfg.split, len(examples))
    generation = cfg.generation
    params = SamplingParams(max_new_tokens=int(generation.max_new_tokens), temperature=float(generation.temperature),
                            top_p=float(generation.top_p), seed=cfg.seed)
    result = evaluate_policy(policy, examples, classifier, simulator, max_turns=int(cfg.max_turns), params=params,
                             instruction=cfg.dataset.instruction, interpretations=str(cfg.interpretations),
                             heuristic_options={"data_dir": cfg.paths.data_dir}, progress=bool(cfg.progress))
    extra = {"simulator": str(cfg.simulator.name), "classifier": type(classifier).__name__,
             "policy_source": described["source"]}
    metrics = write_eval_outputs(result, cfg.output_dir, title=f"{cfg.label} on {cfg.dataset.name}/{cfg.split}",
                                 identity=identity, usage=meter.summary(), extra=extra)
    raw = getattr(policy, "raw_outputs", None)
    if raw is not None:
        from clarifylab.io import write_json

        write_json(Path(cfg.output_dir) / "baseline_raw_outputs.json", raw)
    log_evaluation(cfg.get("logger"), metrics, result.records, max_rows=int(cfg.num_logged_trajectories))
    console = wide_console()
    console.print(rich_table([metrics], PAPER_COLUMNS, title=f"{cfg.label} on {cfg.dataset.name}/{cfg.split}"))
    console.print(meter.table())
    print(f"evaluate: wrote metrics.json, metrics.csv, results.md, trajectories.jsonl to {cfg.output_dir}")
    return metrics
