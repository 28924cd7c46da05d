"""ACT recipe (Chen et al., ICLR 2025, Alg. 2): DPO on Alg. 1 pairs with on-policy replacement.

``run_act(cfg)`` = :func:`~clarifylab.training.dpo_recipe.run_dpo` with an
:class:`~clarifylab.methods.act.replacer.ACTReplacer` plugged into the module's on-policy hook; the
checkpoint is selected by ``val/reward_margin`` (as in the paper). A (``cfg.classifier``) and U
(``cfg.simulator``) come from the top-level config groups; H is the dataset task's heuristic built with the
config's paths and the task's success threshold (:mod:`clarifylab.training.task_success`). Before anything
loads, the pairs' ``manifest.json`` is checked against the config (:func:`check_pairs_against_config`).

Ablations (``cfg.act_ablation``, conf/act_ablation/*.yaml):

- ``random_actions: true`` — before training, each pair's winning action is drawn at random
  (:func:`~clarifylab.methods.act.pairs.randomize_actions`; about half the pairs get their sides and
  actions swapped); the randomized pairs are written to ``<output_dir>/pairs_random_actions.jsonl`` and
  Alg. 2 compares A(y) with the random action.
- ``on_policy: false`` — no replacer: DPO on the Alg. 1 pairs ("w/o on-policy sampling").
- ``simulation: false`` — sampling without trajectory simulation (see :mod:`replacer`).

Config keys read beyond ``run_dpo``'s: ``trainer.{sample_every, sample_prob, threshold, max_turns,
max_new_tokens, temperature, top_p, log_samples}``, ``act_ablation.{random_actions, on_policy, simulation}``,
``classifier``, ``simulator``, ``dataset`` (pairs without ``meta.example``), ``paths``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)


def ablation_switches(cfg: Any) -> dict[str, bool]:
    """``{"random_actions", "on_policy", "simulation"}`` from ``cfg.act_ablation`` (conf/act_ablation/*.yaml)."""
    node = cfg.act_ablation
    known = {"name", "random_actions", "on_policy", "simulation"}
    unknown = sorted(set(node) - known)
    if unknown:
        raise ConfigError(f"act_ablation has keys {unknown} that trainer=act does not know; it reads {sorted(known)} "
                          "(conf/act_ablation/*.yaml)")
    return {"random_actions": bool(node.random_actions), "on_policy": bool(node.on_policy),
            "simulation": bool(node.simulation)}


def replacer_config(cfg: Any, simulation: bool) -> Any:
    """The :class:`ACTReplacerConfig` of ``cfg.trainer``."""
    from clarifylab.methods.act.replacer import ACTReplacerConfig

    t = cfg.trainer
    return ACTReplacerConfig(
        sample_every=t.sample_every, sample_prob=t.sample_prob, threshold=t.threshold, max_turns=t.max_turns,
        max_new_tokens=t.max_new_tokens, temperature=t.temperature, top_p=t.top_p, seed=int(cfg.seed),
        simulation=simulation, max_length=t.max_length, truncation=t.truncation, end_of_turn=t.end_of_turn)


def pairs_settings(cfg: Any, split: str) -> dict[str, Any]:
    """What the Alg. 1 pairs of ``split`` must have been built with for this run (see
    :func:`~clarifylab.methods.act.pairs.check_pairs_manifest`): the dataset, split, conversations subset and its
    seed, the seed, gold or pseudo labels (top-level ``pseudo_labels``), and no build-time random actions (the
    random-actions ablation is applied at train time, ``act_ablation=random_actions``)."""
    return {"dataset": cfg.dataset.name, "split": split,
            "conversations": OmegaConf.select(cfg, "dataset.conversations", default=None),
            "subset_seed": OmegaConf.select(cfg, "dataset.subset_seed", default=None), "seed": int(cfg.seed),
            "pseudo_labels": bool(OmegaConf.select(cfg, "pseudo_labels", default=False)), "random_actions": False}


def check_pairs_against_config(cfg: Any) -> None:
    """Refuse training / validation pairs whose manifest disagrees with the config (before any model loads)."""
    from clarifylab.methods.act.pairs import check_pairs_manifest

    t = cfg.trainer
    check_pairs_manifest(t.pairs_path, pairs_settings(cfg, cfg.dataset.train_split))
    if t.val_pairs_path:
        check_pairs_manifest(t.val_pairs_path, pairs_settings(cfg, cfg.dataset.val_split))


def _examples_lookup(cfg: Any) -> dict[str, Any] | None:
    """id -> Example of the dataset's training split when some training pair lacks ``meta.example``."""
    from clarifylab.training.preference_data import read_pairs

    if all("example" in pair.meta for pair in read_pairs(cfg.trainer.pairs_path)):
        return None
    from clarifylab.data.registry import load_dataset_split

    return {e.id: e for e in load_dataset_split(cfg.dataset, cfg.dataset.train_split, cfg.paths)}


def run_act(cfg: Any, extra_callbacks: list[Any] | None = None, **replacer_options: Any) -> dict[str, float]:
    """Train a policy with ACT; returns :func:`run_dpo`'s metrics.

    Args:
        cfg: the composed train config (``trainer=act``).
        extra_callbacks: Lightning callbacks (tests).
        replacer_options: extra :class:`ACTReplacer` keyword arguments (``scorer``, ``policy_factory``: tests).
    """
    from clarifylab.backends.accounting import UsageMeter
    from clarifylab.evaluation.components import build_classifier, build_simulator
    from clarifylab.training.dpo_recipe import run_dpo
    from clarifylab.methods.act.replacer import ACTReplacer
    from clarifylab.training.task_success import trajectory_scorer

    switches = ablation_switches(cfg)
    check_pairs_against_config(cfg)
    if cfg.trainer.precompute_reference and switches["on_policy"]:
        raise ConfigError("trainer.precompute_reference=true with on-policy ACT: replaced sides must be scored live; "
                          "set trainer.precompute_reference=false (or act_ablation=no_on_policy)")
    if switches["random_actions"]:
        from clarifylab.methods.act.pairs import randomize_actions
        from clarifylab.training.preference_data import read_pairs, write_pairs

        path = Path(cfg.output_dir) / "pairs_random_actions.jsonl"
        pairs = randomize_actions(read_pairs(cfg.trainer.pairs_path), int(cfg.seed))
        write_pairs(path, pairs)
        log.info("random_actions: %d of %d pairs swapped -> %s", sum(p.meta["random_actions"] for p in pairs),
                 len(pairs), path)
        cfg = OmegaConf.merge(cfg, {"trainer": {"pairs_path": str(path)}})
    if not switches["on_policy"]:
        return run_dpo(cfg, extra_callbacks=extra_callbacks)

    meter = UsageMeter()
    classifier = build_classifier(cfg, meter)
    simulator = build_simulator(cfg, meter)
    examples = _examples_lookup(cfg)
    settings = replacer_config(cfg, switches["simulation"])
    replacers: list[ACTReplacer] = []

    replacer_options.setdefault("scorer", trajectory_scorer(cfg.paths, cfg.dataset))  # H with AmbigSQL's data dir

    def factory(tokenizer: Any) -> ACTReplacer:
        samples_dir = str(Path(cfg.output_dir) / "act_samples") if cfg.trainer.log_samples else None
        replacer = ACTReplacer(tokenizer, classifier, simulator, settings, examples=examples, samples_dir=samples_dir,
                               **replacer_options)
        replacers.append(replacer)
        return replacer

    result = run_dpo(cfg, extra_callbacks=extra_callbacks, replacer_factory=factory)
    for replacer in replacers:
        totals = dict(replacer.totals)
        log.info("ACT replacement counts: %s", totals)
        result.update({f"act/{branch}": float(count) for branch, count in totals.items()})
    return result
