"""Can the model answer once nothing is missing? Accuracy on the fully specified versions of a split.

Clarifying only pays off when the policy can finish the task after the user's reply. Before training, this
protocol measures the base model's single-turn accuracy (task heuristic H, greedy decoding) on the
*fully specified* version of every sampled example (:func:`clarifylab.data.synthetic_tables.fully_specified`:
a clarify example's question asked with its missing slot filled in; answer examples unchanged). It is the
upper bound for Traj. H of a policy that asks and then answers like the base model.

    python evaluate.py experiment=demo protocol=fully_specified label=base max_examples=40

Writes ``fully_specified.json`` (accuracy, counts, provenance) and ``fully_specified.jsonl`` (one row per
example: question, gold, response, score) to the run directory; not ``metrics.json``, so
``experiments/report.py`` never mixes it into the result table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Example
from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)
RESULT_FILE = "fully_specified.json"
ROWS_FILE = "fully_specified.jsonl"


def fully_specified_accuracy(backend: ChatBackend, examples: Sequence[Example], params: SamplingParams,
                             score: Callable[[list[str], list[Example]], list[float]],
                             instruction: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Mean score of ``backend``'s single reply to each fully specified example.

    Args:
        examples: already fully specified (every one's gold is a direct answer ``goal[0]``).
        score: ``(responses, examples) -> scores in [0, 1]`` (the task heuristic H against ``goal``).

    Returns:
        ``({"accuracy", "n", "correct", "by_kind": {kind: accuracy}}, rows)``.
    """
    if not examples:
        raise ConfigError("fully_specified: no examples to evaluate (empty split or max_examples=0)")
    responses = backend.complete([prompt_messages(e, instruction) for e in examples], params)
    scores = score(list(responses), list(examples))
    rows = [{"id": e.id, "kind": e.meta.get("kind"), "question": e.history[-1].content, "gold": e.goal[0],
             "response": r, "score": s} for e, r, s in zip(examples, responses, scores)]
    by_kind: dict[str, list[float]] = {}
    for row in rows:
        by_kind.setdefault(str(row["kind"]), []).append(row["score"])
    summary = {"accuracy": sum(scores) / len(scores), "n": len(scores), "correct": sum(s == 1.0 for s in scores),
               "by_kind": {kind: sum(v) / len(v) for kind, v in sorted(by_kind.items())}}
    return summary, rows


def run_fully_specified(cfg: DictConfig) -> dict[str, Any]:
    """protocol=fully_specified: the policy's accuracy on the fully specified ``cfg.split`` (module docstring)."""
    from clarifylab.data.registry import load_dataset_split
    from clarifylab.data.synthetic_tables import fully_specified
    from clarifylab.evaluation.components import build_policy_backend
    from clarifylab.evaluation.eval_sample import sample_eval_examples
    from clarifylab.evaluation.run_provenance import code_version, data_identity, hydra_overrides
    from clarifylab.io import write_json, write_text
    from clarifylab.metrics.task_heuristics import heuristic_for, heuristic_options

    if str(cfg.dataset.name) != "synthetic_tables":
        raise ConfigError(f"protocol=fully_specified needs dataset=synthetic_tables (its examples record the full "
                          f"question), got dataset={cfg.dataset.name}")
    split_examples = load_dataset_split(cfg.dataset, cfg.split, cfg.paths)
    examples = [fully_specified(e) for e in sample_eval_examples(split_examples, cfg.max_examples, int(cfg.seed))]
    backend, described = build_policy_backend(cfg)
    params = SamplingParams(max_new_tokens=int(cfg.generation.max_new_tokens), temperature=0.0, top_p=1.0,
                            seed=int(cfg.seed))
    heuristic = heuristic_for(str(cfg.dataset.name), **heuristic_options(cfg.paths, cfg.dataset))

    def score(responses: list[str], batch: list[Example]) -> list[float]:
        return heuristic.score(responses, [list(e.goal) for e in batch], batch)

    summary, rows = fully_specified_accuracy(backend, examples, params, score, cfg.dataset.instruction)
    result = {**summary, "label": str(cfg.label), "dataset": str(cfg.dataset.name), "split": str(cfg.split),
              "model": described["model"], "source": described["source"], "seed": int(cfg.seed),
              "max_new_tokens": int(cfg.generation.max_new_tokens), **data_identity(cfg.dataset, str(cfg.split)),
              "code_version": code_version(), **hydra_overrides()}
    out = Path(cfg.output_dir)
    write_json(out / RESULT_FILE, result)
    write_text(out / ROWS_FILE, "".join(json.dumps(row) + "\n" for row in rows))
    print(f"fully specified accuracy of {cfg.label} on {cfg.dataset.name}/{cfg.split}: {summary['accuracy']:.3f} "
          f"({summary['correct']}/{summary['n']}); wrote {RESULT_FILE} and {ROWS_FILE} to {out}")
    return result
