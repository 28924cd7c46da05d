"""``evaluate.py``'s recipe: build the roles from config, run the multi-turn evaluation, write and log it.

The row identity written to ``metrics.json`` (what :mod:`clarifylab.evaluation.tables` groups by; only
seeds are averaged):

- ``label``: ``cfg.label``;
- ``model``: ``cfg.model``, else the base model (Hub id / directory / ``smollm2_gguf`` / ``tiny``) or the
  served model name;
- ``approach``: ``cfg.approach``, else the baseline style (``standard``/``cot``/``proactive``), else for a
  trained policy the ``trainer.name`` recorded in its train run (``<policy_dir>/..``:
  :func:`~clarifylab.evaluation.run_provenance.trained_run_info`; ``trained`` if absent), else ``base``;
- ``conversations``: ``cfg.conversations``, else a baseline's number of in-context conversations, else a
  trained policy's ``dataset.conversations`` (its training data setting), else None;
- ``dataset``, ``split``, ``data_file`` and ``data_sha256`` (the file the split is read from and the hash
  of its bytes, :func:`~clarifylab.evaluation.run_provenance.data_identity`);
- for a trained policy, its training run's ``trainer``, ``act_ablation``, ``train_dataset``, ``pairs`` (the
  preference pairs file) and ``pseudo_labels`` (:func:`~clarifylab.evaluation.run_provenance.trained_run_info`);
  None for a base model or a prompting baseline;
- ``max_examples`` and ``sampling`` (how the evaluated examples were drawn, seeded by ``seed``:
  :mod:`clarifylab.evaluation.eval_sample`).

Also grouped by: ``simulator`` / ``simulator_model`` and ``classifier`` / ``classifier_model`` (the LLM
behind each role, :func:`role_model`), ``max_turns``, ``interpretations``.

Provenance that is recorded but not grouped by: ``seed``, ``code_version``, ``overrides`` / ``choices``
(Hydra's command-line overrides and config-group choices), ``train_seed`` / ``train_overrides``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import SamplingParams
from clarifylab.data.registry import load_dataset_split
from clarifylab.evaluation.components import build_baseline, build_classifier, build_policy_backend, build_simulator
from clarifylab.evaluation.eval_sample import SAMPLING, sample_eval_examples
from clarifylab.evaluation.evaluator import evaluate_policy
from clarifylab.evaluation.experiment_log import log_evaluation
from clarifylab.evaluation.outputs import write_eval_outputs
from clarifylab.evaluation.run_provenance import code_version, data_identity, hydra_overrides, trained_run_info
from clarifylab.evaluation.tables import PAPER_COLUMNS, rich_table, wide_console
from clarifylab.io import write_json
from clarifylab.metrics.task_heuristics import heuristic_options

log = logging.getLogger(__name__)

TRAINED_IDENTITY = ("trainer", "act_ablation", "train_dataset", "pairs", "pseudo_labels")
"""Keys of :func:`trained_run_info` that identify a trained policy's row (None for untrained policies)."""


def role_model(role: Any) -> str | None:
    """``model_id`` of an LLM-backed role's ``backend`` (the LLM user simulator, the few-shot classifier);
    None for a rule-based one (the oracle, the heuristic classifier)."""
    return getattr(getattr(role, "backend", None), "model_id", None)


def run_identity(cfg: DictConfig, described: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """``label``, ``dataset``, ``split``, ``model``, ``approach``, the trained-policy keys
    (:data:`TRAINED_IDENTITY`), ``conversations`` and ``seed`` (module docstring); ``trained`` is
    :func:`trained_run_info` of ``cfg.policy_dir`` (empty without one)."""
    style = OmegaConf.select(cfg, "baseline.style", default=None)
    if cfg.approach:
        approach = str(cfg.approach)
    elif style:
        approach = str(style)
    else:
        approach = trained.get("approach", "base")
    conversations = cfg.conversations
    if conversations is None:
        conversations = int(cfg.baseline.conversations) if style else trained.get("conversations")
    return {"label": str(cfg.label), "dataset": str(cfg.dataset.name), "split": str(cfg.split),
            "model": str(cfg.model or described["model"]), "approach": approach,
            **{key: trained.get(key) for key in TRAINED_IDENTITY}, "conversations": conversations,
            "seed": int(cfg.seed)}


def run_policy_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one policy on ``cfg.split`` of ``cfg.dataset``; returns the ``metrics.json`` object."""
    random.seed(cfg.seed)
    split_examples = load_dataset_split(cfg.dataset, cfg.split, cfg.paths)
    examples = sample_eval_examples(split_examples, cfg.max_examples, int(cfg.seed))
    sample = {"max_examples": cfg.max_examples, "sampling": SAMPLING if len(examples) < len(split_examples) else "all",
              "n_examples_in_split": len(split_examples)}
    data = data_identity(cfg.dataset, str(cfg.split))  # after loading: a corpus generated on first use exists now
    meter = UsageMeter()
    backend, described = build_policy_backend(cfg)
    policy = build_baseline(cfg, meter.track("policy", backend, cost=cfg.policy.get("cost")))
    simulator = build_simulator(cfg, meter)
    classifier = build_classifier(cfg, meter)
    trained = trained_run_info(cfg.policy_dir) if cfg.policy_dir else {}
    identity = {**run_identity(cfg, described, trained), **data, **sample}
    log.info("evaluating %s (%s) on %s/%s: %d examples", identity["label"], described["source"], cfg.dataset.name,
             cfg.split, len(examples))
    generation = cfg.generation
    params = SamplingParams(max_new_tokens=int(generation.max_new_tokens), temperature=float(generation.temperature),
                            top_p=float(generation.top_p), seed=cfg.seed)
    result = evaluate_policy(policy, examples, classifier, simulator, max_turns=int(cfg.max_turns), params=params,
                             instruction=cfg.dataset.instruction, interpretations=str(cfg.interpretations),
                             heuristic_options=heuristic_options(cfg.paths, cfg.dataset), progress=bool(cfg.progress))
    extra = {"simulator": str(cfg.simulator.name), "simulator_model": role_model(simulator),
             "classifier": type(classifier).__name__, "classifier_model": role_model(classifier),
             "policy_source": described["source"], "code_version": code_version(), **hydra_overrides(),
             "train_seed": trained.get("train_seed"), "train_overrides": trained.get("train_overrides")}
    metrics = write_eval_outputs(result, cfg.output_dir, title=f"{cfg.label} on {cfg.dataset.name}/{cfg.split}",
                                 identity=identity, usage=meter.summary(), extra=extra)
    raw = getattr(policy, "raw_outputs", None)
    if raw is not None:
        write_json(Path(cfg.output_dir) / "baseline_raw_outputs.json", raw)
    log_evaluation(cfg.logger, metrics, result.records, max_rows=int(cfg.num_logged_trajectories))
    console = wide_console()
    console.print(rich_table([metrics], PAPER_COLUMNS, title=f"{cfg.label} on {cfg.dataset.name}/{cfg.split}"))
    console.print(meter.table())
    print(f"evaluate: wrote metrics.json, metrics.csv, results.md, trajectories.jsonl to {cfg.output_dir}")
    return metrics
