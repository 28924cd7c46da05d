"""``evaluate.py protocol=sml_sharded``: the underspecified multi-turn evaluation of SML (Cook et al., §4).

Each test problem is played sharded (:func:`run_sharded`): user turn 1 is the intent without any slot
value, and every later user turn reveals the next shard, whatever the student said (a question or a wrong
attempt); once all are out the user answers "that is all" (:data:`NUDGE`). Each student turn is classified
(the ``classifier`` group, A) and an answer attempt scored by H; a correct attempt ends the dialogue, else
it runs to ``protocol.max_turns`` student turns (10 in the paper). The gold answer's log-prob before each
student turn is computed with the local model (``protocol.answer_logprob``; not for HTTP policies).

Outputs (same layout and identity as ``protocol=multiturn``): ``metrics.json`` (row identity from
``policy_eval.run_identity`` + ``run_provenance``, then :func:`summarize_sharded`), ``results.md``
(the table), ``trajectories.jsonl``; ``experiments/report.py`` aggregates the runs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clarifylab.backends.accounting import UsageMeter
from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.schema import Action
from clarifylab.evaluation.components import build_classifier, build_policy_backend
from clarifylab.evaluation.experiment_log import log_evaluation
from clarifylab.evaluation.policy_eval import run_identity
from clarifylab.evaluation.run_provenance import code_version, data_identity, hydra_overrides, trained_run_info
from clarifylab.evaluation.tables import markdown_table, rich_table, wide_console
from clarifylab.io import write_json, write_text
from clarifylab.methods.sml.dialogue import Scorer, heuristic_scorer, student_prompt
from clarifylab.methods.sml.problems import SMLProblem, load_problems
from clarifylab.methods.sml.sharded_metrics import ShardedTrace, summarize_sharded

log = logging.getLogger(__name__)

NUDGE = "That is all the information I have. Please give your answer."
SML_COLUMNS = ("label", "dataset", "model", "approach", "n_dialogues", "success", "success_at_1", "success_at_4",
               "premature_per_dialogue", "question_rate", "answer_logp_t1", "answer_logp_t4")


def run_sharded(policy: ChatBackend, problems: Sequence[SMLProblem], scorer: Scorer, classifier: Any, *,
                max_turns: int, params: SamplingParams, instruction: str | None,
                logprob: Any = None) -> tuple[list[ShardedTrace], list[list[Message]]]:
    """Play every problem sharded, batched per round (module docstring).

    Args:
        logprob: ``(prompts, answers) -> [log-prob]`` for the gold answer, or None.

    Returns:
        The traces and the public turns of each dialogue.
    """
    traces = [ShardedTrace(n_shards=len(p.shards)) for p in problems]
    turns: list[list[Message]] = [[{"role": "user", "content": p.shards[0].text}] for p in problems]
    revealed = [1] * len(problems)
    live = list(range(len(problems)))
    for round_index in range(max_turns):
        if not live:
            break
        prompts = [student_prompt(problems[i], turns[i], instruction) for i in live]
        logps = logprob(prompts, [problems[i].answer for i in live]) if logprob else [None] * len(live)
        seed = None if params.seed is None else params.seed + round_index
        replies = policy.complete(prompts, SamplingParams(params.max_new_tokens, params.temperature, params.top_p,
                                                          seed))
        actions = classifier.classify(replies, [problems[i].example for i in live])
        answered = [i for i, a in zip(live, actions) if Action(a) is Action.ANSWER]
        correct = dict(zip(answered, scorer([problems[i] for i in answered],
                                            [replies[live.index(i)] for i in answered]))) if answered else {}
        still = []
        for i, reply, action, logp in zip(live, replies, actions, logps, strict=True):
            trace = traces[i]
            trace.actions.append(Action(action))
            trace.correct.append(bool(correct.get(i, False)))
            trace.revealed.append(revealed[i])
            trace.answer_logps.append(logp)
            turns[i].append({"role": "assistant", "content": reply})
            if trace.correct[-1] or round_index + 1 == max_turns:
                continue
            if revealed[i] < len(problems[i].shards):
                turns[i].append({"role": "user", "content": problems[i].shards[revealed[i]].text})
                revealed[i] += 1
            else:
                turns[i].append({"role": "user", "content": NUDGE})
            still.append(i)
        live = still
    return traces, turns


def local_answer_logprob(backend: Any, batch_size: int) -> Any:
    """``(prompts, answers) -> [log pi(answer | prompt)]`` with the local model behind ``backend`` (the
    answer as the next assistant turn, its end-of-turn token included); None for a non-local backend."""
    inner = backend
    while not hasattr(inner, "tokenizer") and hasattr(inner, "inner"):
        inner = inner.inner
    if not hasattr(inner, "tokenizer") or not hasattr(inner, "model"):
        return None
    import torch

    from clarifylab.training.chat_tokenize import tokenize_conversation
    from clarifylab.training.group_pg_module import pad_features
    from clarifylab.training.logprobs import sequence_logprobs

    model, tokenizer = inner.model, inner.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def score(prompts: Sequence[list[Message]], answers: Sequence[str]) -> list[float]:
        features = [tokenize_conversation(list(p) + [{"role": "assistant", "content": a}], tokenizer,
                                          max_length=10**6, loss_on="last_assistant") for p, a in zip(prompts, answers)]
        out: list[float] = []
        device = next(model.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(features), batch_size):
                batch = {k: v.to(device) for k, v in pad_features(features[start:start + batch_size], pad_id).items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                out += [float(x) for x in sequence_logprobs(logits, batch["labels"])[0]]
        return out

    return score


def run_sml_sharded(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate one policy on the sharded problems of ``cfg.split``; returns the ``metrics.json`` object."""
    p = cfg.protocol
    random.seed(cfg.seed)
    problems = load_problems(cfg.dataset, cfg.split, cfg.paths, int(p.problem_seed), cfg.max_examples)
    data = data_identity(cfg.dataset, str(cfg.split))
    meter = UsageMeter()
    backend, described = build_policy_backend(cfg)
    policy = meter.track("policy", backend, cost=cfg.policy.get("cost"))
    classifier = build_classifier(cfg, meter)
    trained = trained_run_info(cfg.policy_dir) if cfg.get("policy_dir") else {}
    identity = {**run_identity(cfg, described, trained), **data, "max_examples": cfg.max_examples,
                "max_turns": int(p.max_turns), "protocol": str(p.name)}
    generation = cfg.generation
    params = SamplingParams(max_new_tokens=int(generation.max_new_tokens), temperature=float(generation.temperature),
                            top_p=float(generation.top_p), seed=cfg.seed)
    logprob = local_answer_logprob(backend, int(generation.batch_size)) if p.answer_logprob else None
    log.info("sml_sharded: %s on %d sharded problems of %s/%s", identity["label"], len(problems), cfg.dataset.name,
             cfg.split)
    traces, turns = run_sharded(policy, problems, heuristic_scorer(cfg.paths), classifier, max_turns=int(p.max_turns),
                                params=params, instruction=cfg.dataset.instruction, logprob=logprob)
    metrics = {**identity, "heuristic": "exact_match",
               **summarize_sharded(traces, [int(b) for b in p.budgets], int(p.max_turns)),
               "policy_source": described["source"], "code_version": code_version(), **hydra_overrides(),
               "train_seed": trained.get("train_seed"), "usage": meter.summary()}
    out = Path(cfg.output_dir)
    write_json(out / "metrics.json", metrics)
    rows = [{"id": pr.id, "shards": [s.text for s in pr.shards], "answer": pr.answer, "turns": t,
             "actions": [a.value for a in tr.actions], "correct": tr.correct, "revealed": tr.revealed,
             "answer_logps": tr.answer_logps, "success_turn": tr.success_turn}
            for pr, tr, t in zip(problems, traces, turns)]
    from clarifylab.data.jsonl import write_records

    write_records(out / "trajectories.jsonl", rows)
    columns = [c for c in SML_COLUMNS if c in metrics]
    title = f"{cfg.label} on sharded {cfg.dataset.name}/{cfg.split}"
    write_text(out / "results.md", f"# {title}\n\n" + markdown_table([metrics], columns))
    log_evaluation(cfg.get("logger"), metrics, [], max_rows=0)  # the numbers to W&B / CSV, as protocol=multiturn
    wide_console().print(rich_table([metrics], columns, title=title))
    print(f"evaluate: wrote metrics.json, results.md, trajectories.jsonl to {out}")
    return metrics
