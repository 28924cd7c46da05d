"""ACT Alg. 1: action-based contrastive pairs (Chen et al., ICLR 2025, §3.2.1).

For every decision point ``t_i = (p_i, r_i, g_i, a_i)`` of a dataset split:

- ``a_i`` is the dataset's gold action, or (``pseudo_labels``, ACT "in the wild", §5.4) the action an
  action classifier G assigns to the gold response ``r_i``;
- the rejected action is ``a'_i = S \\ {a_i}`` (``Action.other``);
- the winner is ``y_w = r_i`` (one assistant message);
- the loser ``y_l ~ P_M(. | p_i, a'_i)`` is written by a conditional generation model M (any
  :class:`~clarifylab.backends.base.ChatBackend`) prompted with in-context examples of ``a'_i``
  (:func:`generation_messages`), in ONE batched ``complete`` call for all examples.

Each :class:`~clarifylab.training.preference_data.PreferencePair` stores in ``meta`` the Example itself
(``meta["example"]``, so ACT Alg. 2 can simulate trajectories from the pairs file alone), the action
used (``action``), the dataset's action (``dataset_action``), ``rejected_action``, ``goal`` and
``instruction``.

Random-actions ablation (ACT Table 5 "w/ Random Actions": "randomly sampling both the winning and losing
action when constructing the preference pair"): :func:`randomize_actions` draws the winning action
uniformly from S per pair (seeded by pair id); where it differs from the pair's action the two sides are
swapped (the M-written reply wins, the gold reply loses) and ``meta.action`` / ``rejected_action`` follow,
so Alg. 2 also compares on-policy samples against the random action.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.teacher_nodes import build_teacher, plain
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError
from clarifylab.io import write_json
from clarifylab.training.preference_data import PreferencePair, write_pairs

log = logging.getLogger(__name__)

SYSTEM_PROMPT = ("You write the assistant's next reply in a conversation about the data the user shows. "
                 "Reply with the assistant's message only: no label, no explanation.")
ACTION_TASKS: dict[Action, str] = {
    Action.CLARIFY: ("Do NOT answer. Ask the user one short clarifying question about what their latest request "
                     "means (for example which year, item or kind of amount they want)."),
    Action.ANSWER: ("Do NOT ask a question. Answer the user's latest request directly, in one short reply, "
                    "choosing the most likely interpretation if it is ambiguous."),
}


def _dialogue_text(example: Example, context_chars: int) -> str:
    context = example.context if len(example.context) <= context_chars else example.context[:context_chars] + " ..."
    turns = "\n".join(f"{turn.role.capitalize()}: {turn.content}" for turn in example.history)
    return f"Data:\n{context}\n\nConversation:\n{turns}" if context else f"Conversation:\n{turns}"


def generation_messages(example: Example, action: Action, demonstrations: Sequence[Example],
                        context_chars: int = 1200) -> list[Message]:
    """The prompt asking M for a reply to ``example`` that takes ``action`` (ACT Alg. 1 line 6).

    Args:
        example: the decision point (its context, cut to ``context_chars`` characters, and history are shown).
        action: the action the reply must take (the rejected action ``a'_i``).
        demonstrations: in-context examples whose gold response takes ``action``; each is shown as a user
            message (dialogue + instruction) and an assistant message (its gold response).
        context_chars: characters of each context shown.

    Returns:
        ``[system, (user, assistant) per demonstration, user]``.
    """
    task = ACTION_TASKS[action]
    messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for demo in demonstrations:
        messages.append({"role": "user", "content": f"{_dialogue_text(demo, context_chars)}\n\n{task}"})
        messages.append({"role": "assistant", "content": demo.response})
    messages.append({"role": "user", "content": f"{_dialogue_text(example, context_chars)}\n\n{task}"})
    return messages


def pick_demonstrations(example: Example, action: Action, pool: Sequence[Example], actions: Sequence[Action],
                        k: int, seed: int) -> list[Example]:
    """``k`` examples of ``pool`` whose action (``actions``, aligned with ``pool``) is ``action``, never
    ``example`` itself; a draw seeded by ``(seed, example.id)`` (stable whatever the order of the split)."""
    candidates = [other for other, other_action in zip(pool, actions) if other_action is action
                  and other.id != example.id]
    rng = random.Random(f"act_pairs/{seed}/{example.id}")
    return rng.sample(candidates, min(k, len(candidates)))


def randomize_actions(pairs: Sequence[PreferencePair], seed: int) -> list[PreferencePair]:
    """The random-actions ablation (see the module docstring): per pair, the winning action is drawn
    uniformly from {clarify, answer} with ``random.Random(f"random_actions/{seed}/{pair.id}")``; a pair whose
    draw differs from ``meta["action"]`` gets its sides swapped and its actions exchanged.
    ``meta["random_actions"]`` records whether the pair was swapped."""
    out = []
    for pair in pairs:
        if pair.gold_action is None:
            raise ConfigError(f"pair {pair.id!r} has no meta.action; random_actions needs ACT pairs "
                              "(python generate.py task=act_pairs)")
        drawn = random.Random(f"random_actions/{seed}/{pair.id}").choice([Action.CLARIFY, Action.ANSWER])
        if drawn is pair.gold_action:
            out.append(pair.with_sides(random_actions=False))
        else:
            out.append(PreferencePair(id=pair.id, prompt=pair.prompt, chosen=pair.rejected, rejected=pair.chosen,
                                      meta={**pair.meta, "action": drawn.value,
                                            "rejected_action": drawn.other().value, "random_actions": True}))
    return out


def build_act_pairs(examples: Sequence[Example], generator: ChatBackend, *, params: SamplingParams,
                    k: int = 4, seed: int = 0, instruction: str | None = None, classifier: Any = None,
                    context_chars: int = 1200) -> tuple[list[PreferencePair], dict[str, int]]:
    """ACT Alg. 1 over ``examples`` with one batched call to M.

    Args:
        examples: the decision points (also the pool of in-context demonstrations).
        generator: M, the conditional generation model.
        params: M's decoding (a seed is part of the call-cache key).
        k: in-context examples per prompt (of the rejected action, drawn from ``examples``).
        seed: seeds the demonstration draw.
        instruction: the policy's system-instruction override (``dataset.instruction``), used for the pairs'
            prompts and recorded in ``meta["instruction"]``.
        classifier: an action classifier G; when given, ``a_i = G(p_i, r_i)`` (pseudo-labels) instead of the
            dataset's action.
        context_chars: context characters shown to M per dialogue.

    Returns:
        ``(pairs, counts)``: one pair per example whose generated loser is non-empty, in example order; counts
        ``examples``, ``pairs``, ``empty_losing`` (dropped), ``clarify`` / ``answer`` (action of the winners),
        ``pseudo_label_disagreements`` (pseudo-labels differing from the dataset; 0 without a classifier).
    """
    examples = list(examples)
    if classifier is not None:
        actions = [Action(a) for a in classifier.classify([e.response for e in examples], examples)]
    else:
        actions = [e.action for e in examples]
    prompts = [generation_messages(example, action.other(),
                                   pick_demonstrations(example, action.other(), examples, actions, k, seed),
                                   context_chars)
               for example, action in zip(examples, actions)]
    losing = generator.complete(prompts, params) if prompts else []
    if len(losing) != len(examples):
        raise RuntimeError(f"generator {getattr(generator, 'model_id', generator)!r} returned {len(losing)} replies "
                           f"for {len(examples)} prompts")
    pairs, empty = [], []
    for example, action, text in zip(examples, actions, losing):
        if not text.strip():
            empty.append(example.id)
            continue
        pairs.append(PreferencePair(
            id=example.id, prompt=prompt_messages(example, instruction),
            chosen=[{"role": "assistant", "content": example.response}],
            rejected=[{"role": "assistant", "content": text.strip()}],
            meta={"example_id": example.id, "task": example.task, "action": action.value,
                  "rejected_action": action.other().value, "dataset_action": example.action.value,
                  "goal": list(example.goal), "instruction": instruction, "example": example.to_dict()}))
    if empty:
        log.warning("act_pairs: M returned an empty reply for %d of %d examples (first: %s); they get no pair",
                    len(empty), len(examples), empty[:5])
    counts = {"examples": len(examples), "pairs": len(pairs), "empty_losing": len(empty),
              "clarify": sum(p.meta["action"] == Action.CLARIFY.value for p in pairs),
              "answer": sum(p.meta["action"] == Action.ANSWER.value for p in pairs),
              "pseudo_label_disagreements": sum(a is not e.action for a, e in zip(actions, examples))
              if classifier is not None else 0}
    return pairs, counts


def generate_act_pairs(out_dir: str, dataset: Mapping[str, Any], teacher: Mapping[str, Any],
                       classifier: Mapping[str, Any], paths: Mapping[str, Any], splits: Sequence[str] = ("train",),
                       pseudo_labels: bool = False, random_actions: bool = False, k: int = 4,
                       max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                       max_examples: int | None = None, context_chars: int = 1200,
                       generator: ChatBackend | None = None) -> dict[str, Any]:
    """``python generate.py task=act_pairs``: write ``<out_dir>/<split>.jsonl`` per split and ``manifest.json``.

    Args:
        out_dir: output folder (files written atomically; the manifest last).
        dataset, classifier, paths: config nodes (conf/dataset, conf/classifier, conf/paths).
        teacher: M's backend node (conf/teacher: ``kind: transformers | openai``; its call cache makes reruns
            free).
        splits: dataset splits to build pairs for (e.g. ``[train, validation]``: DPO/ACT validation pairs).
        pseudo_labels: label ``r_i`` with the classifier instead of using the dataset's actions.
        random_actions: apply :func:`randomize_actions` (the ablation) before writing.
        k, context_chars, seed: see :func:`build_act_pairs`; max_new_tokens, temperature, top_p: M's decoding.
        max_examples: keep the first N examples per split (quick runs).
        generator: an already-built M (tests); overrides ``teacher``.

    Returns:
        The manifest: ``{"counts": {split: counts}, "files": {split: path}, "params": ...}``.
    """
    from clarifylab.evaluation.components import build_classifier

    dataset, classifier, paths = (plain(node) for node in (dataset, classifier, paths))
    meter = None
    if generator is None:
        meter = UsageMeter()
        generator = build_teacher(teacher, paths["cache_dir"], meter, "teacher",
                                  "python generate.py task=act_pairs teacher@task.teacher=smollm2")
    labeller = None
    if pseudo_labels:
        labeller = build_classifier(OmegaConf.create({"classifier": classifier, "dataset": dataset, "paths": paths,
                                                      "seed": seed}), UsageMeter())
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            seed=None if temperature == 0 else seed)
    dataset_cfg = OmegaConf.create(dataset)
    out = Path(out_dir)
    # conversations / subset_seed exist only for datasets with conversation subsets (not synthetic_tables): None
    manifest: dict[str, Any] = {"task": "act_pairs", "dataset": dataset["name"], "counts": {}, "files": {},
                                "params": {"splits": list(splits), "conversations": dataset.get("conversations"),
                                           "subset_seed": dataset.get("subset_seed"), "pseudo_labels": pseudo_labels,
                                           "random_actions": random_actions, "k": k, "seed": seed,
                                           "max_examples": max_examples, "sampling": params.to_dict(),
                                           "generator": getattr(generator, "model_id", type(generator).__name__)}}
    for split in splits:
        examples = load_dataset_split(dataset_cfg, split, OmegaConf.create(paths), max_examples)
        pairs, counts = build_act_pairs(examples, generator, params=params, k=k, seed=seed,
                                        instruction=dataset["instruction"], classifier=labeller,
                                        context_chars=context_chars)
        if random_actions:
            pairs = randomize_actions(pairs, seed)
            counts["random_actions_swapped"] = sum(bool(p.meta["random_actions"]) for p in pairs)
        path = out / f"{split}.jsonl"
        write_pairs(path, pairs)
        manifest["counts"][split] = counts
        manifest["files"][split] = str(path)
        log.info("act_pairs %s: %s -> %s", split, counts, path)
    if meter is not None:
        manifest["usage"] = meter.summary()
    write_json(out / "manifest.json", manifest)
    return manifest


MANIFEST_FIELDS = ("dataset", "split", "conversations", "subset_seed", "seed", "pseudo_labels", "random_actions")
"""What :func:`check_pairs_manifest` compares: the manifest's ``dataset``, the split its ``files`` map the pairs
file to, and ``params.{conversations, subset_seed, seed, pseudo_labels, random_actions}``."""


def recorded_settings(manifest: Mapping[str, Any], pairs_path: str | Path) -> dict[str, Any]:
    """The :data:`MANIFEST_FIELDS` a manifest records for one of its pairs files (``split``: the split whose file
    has ``pairs_path``'s name; ``None`` when the manifest lists no such file). A field the manifest lacks (an
    older build) is left out."""
    params = manifest.get("params", {})
    files = manifest.get("files", {})
    recorded: dict[str, Any] = {"dataset": manifest.get("dataset"),
                                "split": next((split for split, path in files.items()
                                               if Path(path).name == Path(pairs_path).name), None)}
    recorded.update({key: params[key] for key in MANIFEST_FIELDS[2:] if key in params})
    return recorded


def check_pairs_manifest(pairs_path: str | Path, expected: Mapping[str, Any]) -> None:
    """Refuse Alg. 1 pairs built for another setting than the run's: ``<pairs dir>/manifest.json`` (written by
    :func:`generate_act_pairs`) must record ``expected`` (a subset of :data:`MANIFEST_FIELDS` -> the config's value).
    A pairs file without a manifest (built by hand) is accepted with a warning.

    Raises:
        ConfigError: one line naming the first mismatching (or unrecorded) field, both values and the manifest.
    """
    manifest_path = Path(pairs_path).parent / "manifest.json"
    if not manifest_path.is_file():
        log.warning("%s has no manifest.json next to it: cannot check that its pairs match the run's dataset, "
                    "split, conversations, seed, labels and ablation", pairs_path)
        return
    recorded = recorded_settings(json.loads(manifest_path.read_text()), pairs_path)
    for field, value in expected.items():
        if field not in recorded:
            raise ConfigError(f"{manifest_path} does not record {field!r} (built by an older version): rebuild the "
                              "pairs with `python generate.py task=act_pairs`")
        if recorded[field] != value:
            raise ConfigError(f"{pairs_path} was built with {field}={recorded[field]!r} but this run has "
                              f"{field}={value!r} ({manifest_path}): build matching pairs with `python generate.py "
                              "task=act_pairs` or point trainer.pairs_path at them")
