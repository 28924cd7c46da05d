"""IRPO recipe (Pang et al., 2024; the ACT paper's IRPO baseline, SPEC §5): iterative on-policy DPO + NLL.

``run_irpo(cfg)`` runs iterations t = 0 .. ``trainer.iterations`` - 1, each in ``<output_dir>/iter_<t>/``:

1. load M_t (t = 0: ``trainer.init_policy``, e.g. an SFT policy, else the base student; t > 0:
   ``iter_<t-1>/policy``) and sample ``trainer.num_samples`` replies per training prompt at
   ``trainer.temperature`` (seed ``cfg.seed + 1_000_000 * t``);
2. label each reply at the turn level (``methods.irpo.pairs``: the action classifier ``cfg.classifier`` must give
   the gold action; an answer is then scored by the task heuristic H against the gold answer) and pair a correct one
   (H >= the task's success threshold, ``training.task_success``; ``trainer.threshold`` overrides) with an
   incorrect one per prompt (``generation.irpo_pairs``), writing
   ``iter_<t>/pairs.jsonl`` and ``iter_<t>/pair_counts.json``;
3. :func:`~clarifylab.training.dpo_recipe.run_dpo` on those pairs with ``init_policy = M_t`` (also the reference) and
   the loss DPO + ``trainer.alpha`` · length-normalised NLL(winner) (alpha = 1, the paper), saving M_{t+1} to
   ``iter_<t>/policy`` and its metrics to ``iter_<t>/metrics.json``.

The last iteration's policy becomes ``<output_dir>/policy`` (a relative symlink; a copy where links fail).

Resume at iteration granularity: an iteration whose ``policy/`` and ``metrics.json`` exist is skipped (logged);
an iteration whose pairs were written but whose training did not finish reuses its pairs file when the
sampling settings saved next to it (``sampling.json``) are unchanged, else it samples again.
A prompt set with no (correct, incorrect) pair at some iteration stops the run with an error (nothing to train on).

Config keys read beyond ``run_dpo``'s: ``trainer.{iterations, num_samples, temperature, top_p, max_new_tokens,
threshold, pairs_per_prompt, sample_batch_size, gold_fallback}``, ``dataset.{name, instruction, train_split,
max_train_examples}``, ``paths.{cache_dir, data_dir}``, ``hardware.accelerator``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import SamplingParams
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.data.registry import load_dataset_split
from clarifylab.errors import ConfigError
from clarifylab.evaluation.components import build_classifier
from clarifylab.io import write_json
from clarifylab.methods.irpo.pairs import build_irpo_pairs
from clarifylab.models import load_model_and_tokenizer, load_policy
from clarifylab.models.policy_io import link_final_policy
from clarifylab.training import dpo_recipe
from clarifylab.training.lightning_setup import stage_loggers
from clarifylab.training.preference_data import write_pairs
from clarifylab.training.task_success import heuristic_from_config, success_threshold

log = logging.getLogger(__name__)

SEED_STRIDE = 1_000_000  # sampling seed of iteration t = cfg.seed + SEED_STRIDE * t (backends add a chunk index)
BackendFactory = Callable[[Any, Any, int], Any]
"""``factory(model, tokenizer, iteration) -> ChatBackend`` sampling M_t (tests plug scripted backends in)."""


def iteration_dir(output_dir: str | os.PathLike[str], iteration: int) -> Path:
    """``<output_dir>/iter_<t>``."""
    return Path(output_dir) / f"iter_{iteration}"


def is_iteration_done(directory: Path) -> bool:
    """True when the iteration in ``directory`` saved its policy and metrics (it is skipped on re-run)."""
    return (directory / "policy").is_dir() and (directory / "metrics.json").is_file()


def iteration_config(cfg: Any, iteration: int, init_policy: str | None) -> Any:
    """The DPO sub-config of iteration t: ``output_dir = iter_<t>``, ``trainer.init_policy = M_t``,
    ``trainer.pairs_path = iter_<t>/pairs.jsonl``, ``resume = null``; loggers writing into the top-level
    run directory are moved into ``iter_<t>`` (interpolated ``${output_dir}`` follows by itself); a W&B logger
    gets its own run per iteration, named ``<name>-iter<t>`` and grouped under ``<name>`` (``run_irpo``
    finishes each iteration's run, so the next one starts a new run with a new id)."""
    directory = iteration_dir(cfg.output_dir, iteration)
    sub = OmegaConf.merge(cfg, {"output_dir": str(directory), "resume": None,
                                "trainer": {"init_policy": init_policy, "pairs_path": str(directory / "pairs.jsonl"),
                                            "name": f"{cfg.trainer.name}/iter_{iteration}"}})
    stage_loggers(sub, cfg.output_dir, directory, iteration, cfg.trainer.name)
    return sub


def finish_wandb_run() -> None:
    """End the process's active W&B run, if any (a WandbLogger reuses an active run instead of starting one)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _sampling_device(cfg: Any) -> str:
    accelerator = str(cfg.hardware.accelerator)
    return "cuda" if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def load_sampling_policy(cfg: Any, init_policy: str | None) -> tuple[Any, Any]:
    """M_t for sampling: the saved policy ``init_policy`` (its adapter stages unmerged, so the samples come from
    exactly the M_t that iteration t trains from) or the base ``cfg.student``."""
    if init_policy:
        if not Path(init_policy).is_dir():
            raise ConfigError(f"trainer.init_policy={init_policy!r} is not a directory: pass the `policy` folder "
                              "of an earlier train.py run (e.g. <sft run dir>/policy) or null")
        model, tokenizer, _ = load_policy(init_policy, cfg.paths.cache_dir)  # unmerged: exactly M_t
    else:
        model, tokenizer = load_model_and_tokenizer(instantiate(cfg.student, _convert_="all"), cfg.paths.cache_dir)
    return model.to(_sampling_device(cfg)).eval(), tokenizer


def _free(*objects: Any) -> None:
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_iteration_pairs(cfg: Any, iteration: int, init_policy: str | None, examples: list[Any], heuristic: Any,
                          backend_factory: BackendFactory | None = None) -> dict[str, int]:
    """Steps 1-2 of iteration t: sample from M_t, label, pair; write ``pairs.jsonl`` then ``pair_counts.json``
    into ``iter_<t>``; return the counts (see :func:`~clarifylab.methods.irpo.pairs.pair_candidates`)."""
    t = cfg.trainer
    directory = iteration_dir(cfg.output_dir, iteration)
    model, tokenizer = load_sampling_policy(cfg, init_policy)
    backend = (backend_factory(model, tokenizer, iteration) if backend_factory is not None else
               TransformersBackend(model, tokenizer, batch_size=t.sample_batch_size))
    params = SamplingParams(max_new_tokens=int(t.max_new_tokens), temperature=float(t.temperature),
                            top_p=float(t.top_p), seed=int(cfg.seed) + SEED_STRIDE * iteration)
    pairs, counts = build_irpo_pairs(
        examples, backend, heuristic, build_classifier(cfg, UsageMeter()), n=int(t.num_samples), params=params,
        threshold=success_threshold(examples[0].task, t.threshold),
        seed=int(cfg.seed), iteration=iteration, pairs_per_prompt=t.pairs_per_prompt,
        instruction=cfg.dataset.instruction, gold_fallback=t.gold_fallback)
    _free(model, backend)
    directory.mkdir(parents=True, exist_ok=True)
    write_pairs(directory / "pairs.jsonl", pairs)
    write_json(directory / "pair_counts.json", counts)
    log.info("IRPO iteration %d: %d pairs from %d prompts (%d all correct, %d all incorrect, skipped; "
             "%d gold winners; %d of %d samples correct, %d empty) -> %s", iteration, counts["pairs"],
             counts["prompts"], counts["skipped_all_correct"], counts["skipped_all_incorrect"], counts["gold_winners"],
             counts["correct_samples"], counts["samples"], counts["empty_samples"], directory / "pairs.jsonl")
    return counts


def sampling_settings(cfg: Any, iteration: int, init_policy: str | None) -> dict[str, Any]:
    """What iteration t's pairs depend on; saved as ``iter_<t>/sampling.json``. Saved pairs are reused on a
    re-run only when these are unchanged (e.g. not after editing ``trainer.threshold``)."""
    t, dataset = cfg.trainer, cfg.dataset
    keys = ("num_samples", "temperature", "top_p", "max_new_tokens", "threshold", "pairs_per_prompt")
    classifier = cfg.classifier  # the labels depend on A
    return {"seed": int(cfg.seed), "iteration": iteration, "init_policy": init_policy,
            **{key: t[key] for key in keys},
            "classifier": OmegaConf.to_container(classifier, resolve=True) if OmegaConf.is_config(classifier)
            else classifier,
            "dataset": {key: dataset[key] for key in ("name", "train_split", "max_train_examples", "instruction")}}


def _saved_pairs_match(directory: Path, settings: dict[str, Any]) -> bool:
    files = [directory / name for name in ("pairs.jsonl", "pair_counts.json", "sampling.json")]
    return all(path.is_file() for path in files) and json.loads(files[2].read_text()) == settings


def run_irpo(cfg: Any, extra_callbacks: list[Any] | None = None,
             backend_factory: BackendFactory | None = None) -> dict[str, float]:
    """Train a policy with IRPO (module docstring); return the last iteration's :func:`run_dpo` metrics plus,
    per iteration t, ``irpo/iter_<t>/<count>`` for every pair count (``pairs``, ``paired_prompts``,
    ``skipped_all_correct``, ``skipped_all_incorrect``, ...) and ``irpo/iterations``.

    Args:
        cfg: the composed train config (``trainer=irpo``).
        extra_callbacks: Lightning callbacks added to every iteration's trainer (tests).
        backend_factory: how M_t is wrapped for sampling; default a :class:`TransformersBackend` with
            ``trainer.sample_batch_size``.
    """
    t = cfg.trainer
    iterations = int(t.iterations)
    if iterations < 1:
        raise ConfigError(f"trainer.iterations={iterations} must be >= 1")
    if float(t.temperature) <= 0:
        raise ConfigError(f"trainer.temperature={t.temperature}: IRPO samples N replies per prompt and needs "
                          "temperature > 0")
    if t.precompute_reference:
        raise ConfigError("trainer.precompute_reference=true is not supported by trainer=irpo (each iteration has "
                          "a new reference M_t); set it to false")
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = cfg.dataset
    examples: list[Any] | None = None
    heuristic = None
    init_policy = t.init_policy
    result: dict[str, float] = {}
    counts_by_iteration: dict[int, dict[str, int]] = {}
    for iteration in range(iterations):
        directory = iteration_dir(output_dir, iteration)
        if is_iteration_done(directory):
            log.info("IRPO iteration %d: %s already has policy/ and metrics.json; skipping it", iteration, directory)
            print(f"[irpo] iteration {iteration}: done earlier ({directory}), skipped")
            result = json.loads((directory / "metrics.json").read_text())
            counts_by_iteration[iteration] = json.loads((directory / "pair_counts.json").read_text())
            init_policy = str(directory / "policy")
            continue
        settings = json.loads(json.dumps(sampling_settings(cfg, iteration, init_policy), default=str))
        if _saved_pairs_match(directory, settings):
            log.info("IRPO iteration %d: reusing the pairs in %s", iteration, directory / "pairs.jsonl")
            counts = json.loads((directory / "pair_counts.json").read_text())
        else:
            if examples is None:
                examples = load_dataset_split(dataset, dataset.train_split, cfg.paths,
                                              max_examples=dataset.max_train_examples)
                if not examples:
                    raise ConfigError(f"dataset {dataset.name!r} split {dataset.train_split!r} has no examples")
                heuristic = heuristic_from_config(examples[0].task, cfg.paths, cfg.dataset)
            (directory / "sampling.json").unlink(missing_ok=True)
            counts = build_iteration_pairs(cfg, iteration, init_policy, examples, heuristic, backend_factory)
            write_json(directory / "sampling.json", settings)
        counts_by_iteration[iteration] = counts
        if counts["pairs"] == 0:
            raise ConfigError(
                f"IRPO iteration {iteration}: no prompt of {counts['prompts']} has both a correct and an incorrect "
                f"reply ({counts['skipped_all_correct']} all correct, {counts['skipped_all_incorrect']} all "
                f"incorrect; see {directory / 'pair_counts.json'}); raise trainer.num_samples or "
                "trainer.temperature, or change trainer.threshold")
        try:
            result = dpo_recipe.run_dpo(iteration_config(cfg, iteration, init_policy), extra_callbacks=extra_callbacks)
        finally:
            finish_wandb_run()  # iteration t's W&B run ends with it
        write_json(directory / "metrics.json", result)
        init_policy = str(directory / "policy")
    link_final_policy(output_dir, iteration_dir(output_dir, iterations - 1) / "policy")
    metrics = dict(result)
    for iteration, counts in counts_by_iteration.items():
        metrics.update({f"irpo/iter_{iteration}/{key}": float(value) for key, value in counts.items()})
    metrics["irpo/iterations"] = float(iterations)
    print(f"[irpo] policy -> {output_dir / 'policy'} (iteration {iterations - 1}); pairs per iteration: "
          + ", ".join(str(counts_by_iteration[i]["pairs"]) for i in range(iterations)))
    return metrics
