"""DPO-Dist pairs (ACT paper §4.3 and App. B, after Mitra et al. 2023; Mukherjee et al. 2023; Xu et al. 2024a).

An off-policy baseline: both sides of a pair are written by teacher models of different capacity given the
policy's own prompt ``p_i`` (task instruction + context + history); the reply of the STRONGER model is the
winner ``y_w``, the weaker model's the loser ``y_l``. No action is imposed on either side, so unlike ACT's
Alg. 1 pairs the contrast is one of capacity, not of clarify vs answer.

``python generate.py task=dpo_dist_pairs teacher@task.strong=openai task.strong.model=<big> \\
teacher@task.weak=openai task.weak.model=<small>`` writes ``<out_dir>/<split>.jsonl``; train with
``trainer=dpo trainer.pairs_path=<out_dir>/train.jsonl trainer.val_pairs_path=<out_dir>/validation.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.backends.teacher_nodes import build_teacher, plain
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Example
from clarifylab.io import write_json
from clarifylab.training.preference_data import PreferencePair, write_pairs

log = logging.getLogger(__name__)


def build_dist_pairs(examples: Sequence[Example], strong: ChatBackend, weak: ChatBackend, *, params: SamplingParams,
                     instruction: str | None = None) -> tuple[list[PreferencePair], dict[str, int]]:
    """One pair per example: ``(p_i, y_w = strong(p_i), y_l = weak(p_i))``, one batched call per model.

    Args:
        examples: the decision points.
        strong, weak: the higher- and lower-capacity teachers.
        params: both models' decoding.
        instruction: the policy's system-instruction override (``dataset.instruction``).

    Returns:
        ``(pairs, counts)``; counts ``examples``, ``pairs``, ``empty`` (either reply empty: dropped) and
        ``identical`` (both replies the same after stripping: no preference, dropped).
    """
    prompts = [prompt_messages(example, instruction) for example in examples]
    winners = strong.complete(prompts, params) if prompts else []
    losers = weak.complete(prompts, params) if prompts else []
    for name, replies in (("strong", winners), ("weak", losers)):
        if len(replies) != len(prompts):
            raise RuntimeError(f"the {name} teacher returned {len(replies)} replies for {len(prompts)} prompts")
    pairs: list[PreferencePair] = []
    empty = identical = 0
    for example, prompt, chosen, rejected in zip(examples, prompts, winners, losers):
        chosen, rejected = chosen.strip(), rejected.strip()
        if not chosen or not rejected:
            empty += 1
            continue
        if chosen == rejected:
            identical += 1
            continue
        pairs.append(PreferencePair(
            id=example.id, prompt=prompt, chosen=[{"role": "assistant", "content": chosen}],
            rejected=[{"role": "assistant", "content": rejected}],
            meta={"example_id": example.id, "task": example.task, "dataset_action": example.action.value,
                  "goal": list(example.goal), "instruction": instruction, "source": "dpo_dist",
                  "example": example.to_dict()}))
    if empty or identical:
        log.warning("dpo_dist: %d empty and %d identical reply pairs of %d examples were dropped", empty, identical,
                    len(prompts))
    return pairs, {"examples": len(prompts), "pairs": len(pairs), "empty": empty, "identical": identical}


def generate_dpo_dist_pairs(out_dir: str, dataset: Mapping[str, Any], strong: Mapping[str, Any],
                            weak: Mapping[str, Any], paths: Mapping[str, Any], splits: Sequence[str] = ("train",),
                            max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                            max_examples: int | None = None,
                            backends: tuple[ChatBackend, ChatBackend] | None = None) -> dict[str, Any]:
    """``python generate.py task=dpo_dist_pairs``: ``<out_dir>/<split>.jsonl`` per split and ``manifest.json``.

    Args:
        out_dir: output folder (pair files written atomically, the manifest last).
        dataset, paths: config nodes (conf/dataset, conf/paths).
        strong, weak: teacher backend nodes (conf/teacher); their call caches make reruns free.
        splits: dataset splits to build pairs for (``validation`` pairs select the DPO checkpoint).
        max_new_tokens, temperature, top_p, seed: both teachers' decoding (seed only when sampling).
        max_examples: the first N examples per split.
        backends: already-built ``(strong, weak)`` (tests); override the nodes.

    Returns:
        The manifest ``{"task", "dataset", "counts": {split: counts}, "files", "params", "usage"?}``.
    """
    dataset, paths = plain(dataset), plain(paths)
    meter = None
    if backends is None:
        meter = UsageMeter()
        hint = "python generate.py task=dpo_dist_pairs teacher@task.strong=smollm2 teacher@task.weak=tiny"
        backends = (build_teacher(strong, paths["cache_dir"], meter, "strong", hint),
                    build_teacher(weak, paths["cache_dir"], meter, "weak", hint))
    strong_backend, weak_backend = backends
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=None if temperature == 0 else seed)
    out = Path(out_dir)
    manifest: dict[str, Any] = {
        "task": "dpo_dist_pairs", "dataset": dataset["name"], "counts": {}, "files": {},
        "params": {"splits": list(splits), "max_examples": max_examples, "sampling": params.to_dict(),
                   "strong": getattr(strong_backend, "model_id", type(strong_backend).__name__),
                   "weak": getattr(weak_backend, "model_id", type(weak_backend).__name__)}}
    for split in splits:
        examples = load_dataset_split(OmegaConf.create(dataset), split, OmegaConf.create(paths), max_examples)
        pairs, counts = build_dist_pairs(examples, strong_backend, weak_backend, params=params,
                                         instruction=dataset["instruction"])
        path = out / f"{split}.jsonl"
        write_pairs(path, pairs)
        manifest["counts"][split], manifest["files"][split] = counts, str(path)
        log.info("dpo_dist_pairs %s: %s -> %s", split, counts, path)
    if meter is not None:
        manifest["usage"] = meter.summary()
    write_json(out / "manifest.json", manifest)
    return manifest
