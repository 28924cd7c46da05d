"""Agreement of an action classifier A with the gold actions of a dataset (SPEC §4: "report agreement with gold").

Every gold response ``Example.response`` of a split is classified and compared with its gold action
``Example.action``: accuracy, macro F1 and clarify precision/recall/F1
(:func:`~clarifylab.metrics.action_metrics.action_metrics`), the confusion counts, and the first
disagreements for error analysis. ``experiments/classifier_agreement.py`` (config ``conf/agreement.yaml``)
runs it and writes ``agreement.json`` and ``agreement.md``.

A few-shot classifier must not see the evaluated responses as demonstrations: its demonstrations come
from ``demonstration_split``, which must be a different split (checked by name, then by content).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from rich.progress import track
from sklearn.metrics import confusion_matrix

from clarifylab.backends.accounting import UsageMeter
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Example
from clarifylab.errors import ConfigError
from clarifylab.evaluation.components import build_classifier
from clarifylab.evaluation.eval_sample import sample_eval_examples
from clarifylab.evaluation.tables import markdown_table, rich_table, wide_console
from clarifylab.io import write_json, write_text
from clarifylab.metrics.action_metrics import ACTION_LABELS, action_metrics

log = logging.getLogger(__name__)

AGREEMENT_JSON = "agreement.json"
AGREEMENT_MD = "agreement.md"
AGREEMENT_COLUMNS = ("dataset", "split", "classifier", "n", "n_gold_clarify", "accuracy", "macro_f1",
                     "clarify_precision", "clarify_recall", "clarify_f1", "seconds")


def confusion_counts(gold: Sequence[Action | str], predicted: Sequence[Action | str]) -> dict[str, dict[str, int]]:
    """``{gold action: {predicted action: count}}`` over both actions (zeros included).

    >>> confusion_counts(["clarify", "answer", "answer"], ["clarify", "clarify", "answer"])
    {'clarify': {'clarify': 1, 'answer': 0}, 'answer': {'clarify': 1, 'answer': 1}}
    """
    if len(gold) != len(predicted):
        raise ValueError(f"confusion_counts: {len(gold)} gold actions but {len(predicted)} predictions")
    matrix = confusion_matrix([Action(g).value for g in gold], [Action(p).value for p in predicted],
                              labels=list(ACTION_LABELS))
    return {g: {p: int(matrix[i, j]) for j, p in enumerate(ACTION_LABELS)} for i, g in enumerate(ACTION_LABELS)}


def check_no_leak(classifier: Any, examples: Sequence[Example]) -> None:
    """Raise :class:`ConfigError` if a demonstration of ``classifier`` (its ``demonstrations``, if any)
    is one of the evaluated ``examples`` (same context and gold response)."""
    demonstrations = getattr(classifier, "demonstrations", None) or []
    shown = {(d.context, d.response) for d in demonstrations}
    leaked = [e.id for e in examples if (e.context, e.response) in shown]
    if leaked:
        raise ConfigError(f"classifier agreement: {len(leaked)} evaluated examples (e.g. {leaked[0]!r}) are also "
                          f"few-shot demonstrations; set demonstration_split to a split disjoint from `split`")


def classifier_agreement(classifier: Any, examples: Sequence[Example], max_disagreements: int = 20,
                         batch_size: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Classify every gold response of ``examples`` and compare with the gold actions.

    Args:
        classifier: an :class:`~clarifylab.env.action_classifier.ActionClassifier`.
        examples: the decision points; ``response`` is classified, ``action`` is the reference.
        max_disagreements: how many disagreements to list (in input order).
        batch_size: responses per ``classify`` call (None = one call); a progress bar advances per call.
        progress: show a rich progress bar.

    Returns:
        The :func:`action_metrics` keys (``accuracy``, ``macro_f1``, ``clarify_precision``,
        ``clarify_recall``, ``clarify_f1``, ``n``), ``n_gold_clarify``, ``n_predicted_clarify``,
        ``confusion`` (:func:`confusion_counts`), ``seconds`` (wall time of classification),
        ``responses_per_second``, ``n_disagreements`` and ``disagreements`` (``id``, ``question`` = the last
        user turn, ``response``, ``gold``, ``predicted``).
    """
    if not examples:
        raise ConfigError("classifier agreement: no examples to classify (empty split or max_examples=0)")
    size = batch_size or len(examples)
    batches = [examples[i:i + size] for i in range(0, len(examples), size)]
    if progress:
        batches = track(batches, description=f"classifying {len(examples)} responses")
    predicted: list[Action] = []
    start = time.perf_counter()
    for batch in batches:
        predicted += classifier.classify([e.response for e in batch], list(batch))
    seconds = time.perf_counter() - start
    gold = [e.action for e in examples]
    disagreements = [{"id": e.id, "question": e.history[-1].content, "response": e.response, "gold": g.value,
                      "predicted": p.value} for e, g, p in zip(examples, gold, predicted, strict=True) if g is not p]
    log.info("classified %d responses in %.2f s (%.1f responses/s)", len(examples), seconds,
             len(examples) / max(seconds, 1e-9))
    return {**action_metrics(gold, predicted),
            "n_gold_clarify": sum(g is Action.CLARIFY for g in gold),
            "n_predicted_clarify": sum(p is Action.CLARIFY for p in predicted),
            "confusion": confusion_counts(gold, predicted),
            "seconds": seconds, "responses_per_second": len(examples) / max(seconds, 1e-9),
            "n_disagreements": len(disagreements), "disagreements": disagreements[:max_disagreements]}


def _cell(text: str, max_chars: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= max_chars else text[:max_chars] + " …"


def agreement_markdown(result: dict[str, Any], title: str) -> str:
    """``agreement.md``: the metrics row, the confusion counts and the listed disagreements."""
    confusion = [{"gold \\ predicted": g, **result["confusion"][g]} for g in ACTION_LABELS]
    parts = [f"# {title}\n", markdown_table([result], AGREEMENT_COLUMNS),
             "\n## Confusion (rows: gold, columns: predicted)\n\n" + markdown_table(
                 confusion, ["gold \\ predicted", *ACTION_LABELS])]
    listed = result["disagreements"]
    parts.append(f"\n## Disagreements ({len(listed)} of {result['n_disagreements']} listed)\n\n")
    if listed:
        parts.append(markdown_table([{k: _cell(v) for k, v in d.items()} for d in listed],
                                    ["id", "question", "response", "gold", "predicted"]))
    return "".join(parts)


def split_names(split: Any) -> list[str]:
    """``split`` config value as a list of split names (a string or a list of strings)."""
    names = list(split) if isinstance(split, (list, tuple, ListConfig)) else [split]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"split must be a split name or a list of them (e.g. test or [train,validation,test]), "
                          f"got {split!r}")
    return names


def run_classifier_agreement(cfg: DictConfig) -> dict[str, Any]:
    """``experiments/classifier_agreement.py``'s recipe (config ``conf/agreement.yaml``): load the split(s),
    sample, build the classifier (demonstrations from ``demonstration_split``), score it, write
    ``agreement.json`` and ``agreement.md`` to ``cfg.output_dir`` and print the tables. Returns the JSON object."""
    splits = split_names(cfg.split)
    uses_demonstrations = "pool_split" in cfg.classifier
    demonstration_split = cfg.demonstration_split if uses_demonstrations else None
    if demonstration_split is not None and (demonstration_split in splits or "all" in (*splits, demonstration_split)):
        raise ConfigError(f"demonstration_split={demonstration_split!r} overlaps split={'+'.join(splits)}: few-shot "
                          f"demonstrations must come from another split (e.g. demonstration_split=train with "
                          f"split=test), or set demonstration_split=null for the built-in demonstrations")
    examples = [e for name in splits for e in load_dataset_split(cfg.dataset, name, cfg.paths)]
    examples = sample_eval_examples(examples, cfg.max_examples, int(cfg.seed), balanced=bool(cfg.balanced))
    if uses_demonstrations:
        with open_dict(cfg):
            cfg.classifier.pool_split = demonstration_split
    meter = UsageMeter()
    classifier = build_classifier(cfg, meter)
    check_no_leak(classifier, examples)
    log.info("classifier agreement of %s on %s/%s: %d gold responses", type(classifier).__name__, cfg.dataset.name,
             "+".join(splits), len(examples))
    result = classifier_agreement(classifier, examples, max_disagreements=int(cfg.max_disagreements),
                                  batch_size=cfg.batch_size, progress=bool(cfg.progress))
    identity = {"dataset": str(cfg.dataset.name), "split": "+".join(splits), "classifier": type(classifier).__name__,
                "demonstration_split": demonstration_split, "max_examples": cfg.max_examples,
                "balanced": bool(cfg.balanced), "seed": int(cfg.seed)}
    extra = {"fallbacks": getattr(classifier, "fallbacks", None), "usage": meter.summary(),
             "classifier_config": OmegaConf.to_container(cfg.classifier, resolve=True)}
    record = {**identity, **result, **extra}
    out = Path(cfg.output_dir)
    write_json(out / AGREEMENT_JSON, record)
    title = f"{identity['classifier']} vs gold actions on {identity['dataset']}/{identity['split']}"
    write_text(out / AGREEMENT_MD, agreement_markdown(record, title))
    console = wide_console()
    console.print(rich_table([record], AGREEMENT_COLUMNS, title=title))
    console.print(rich_table([{"gold": g, **record["confusion"][g]} for g in ACTION_LABELS],
                             ["gold", *ACTION_LABELS], title="confusion (rows: gold, columns: predicted)"))
    print(f"classifier agreement: wrote {AGREEMENT_JSON} and {AGREEMENT_MD} to {out}")
    return record
