"""Multi-turn evaluation of a policy (ACT §4.2, App. D): rollouts -> the papers' columns.

For every example the policy responds once to the prompt p (y, one batched call); the action
classifier A labels y; while y (and each later reply) is a clarifying question the user simulator U
answers and the policy responds again, up to ``max_turns`` assistant turns
(:func:`~clarifylab.env.rollout.rollout`, ACT Alg. 2 lines 6-12). The last assistant turn is the
trajectory outcome g'. Columns (all means; H is the task heuristic of
:mod:`clarifylab.metrics.task_heuristics`):

- **Action level** over decision points (one per example, however many trajectories it has): accuracy,
  macro F1 over {clarify, answer}, clarify precision/recall/F1 of A(y) against the gold action a
  (:func:`~clarifylab.metrics.action_metrics.action_metrics`; undefined rates are None).
- **Turn-level H**: H(y, r) with r the gold response — for a gold-clarify example r is the gold
  clarifying question, so a clarifying y is scored against that question and an answering y scores ~0
  (the paper's definition: "computed between all sampled responses y and all ground truth responses
  r"). Averaged over unique prompts p (one per example), as ACT does for Abg-CoQA.
- **Trajectory-level H**: H(g', g) with g the goal of the trajectory's interpretation, over all
  trajectories. A trajectory that still asks at the turn limit is scored on that last question (~0).
- **Post-clarification H**: trajectory-level H over the trajectories with >= 1 clarification turn
  (whatever the gold action). ``None`` when no trajectory clarified (undefined, shown as "–").
- **Scorer outcomes**: a heuristic that says why it scored what it did (:class:`OutcomeReporting`: the
  AmbigSQL execution match) is counted per code and level, ``<prefix>_<code>_turn`` over first responses
  and ``<prefix>_<code>_trajectory`` over trajectory outcomes, e.g. ``sql_multiple_statements_trajectory``:
  outcomes such as ``SELECT ...; DROP TABLE t`` that scored 0 because they hold a second statement.
- **Simulator health**: simulated user replies that copy the question, an earlier turn or the
  simulator's own goal text or prompt instead of answering (:mod:`clarifylab.env.degenerate_replies`), counted per
  source and as a rate over all simulated replies. A high rate means the content-level columns measure
  the simulator, not the policy.

Interpretations: ``"all"`` simulates one trajectory per gold interpretation (ACT evaluates
Abg-CoQA "for every ground truth trajectory"); ``"auto"`` picks ``"all"`` for the tasks in
:data:`ALL_INTERPRETATION_TASKS` and ``"first"`` otherwise. The interpretations of one example
share its one first response y (identical to sampling y per interpretation under greedy decoding);
its action is one decision and counts once in the action-level metrics (per trajectory, an ambiguous
Abg-CoQA example with two interpretations would weigh double).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example
from clarifylab.env.action_classifier import ActionClassifier
from clarifylab.env.degenerate_replies import SOURCES
from clarifylab.env.rollout import rollout
from clarifylab.env.user_simulator import UserSimulator
from clarifylab.errors import ConfigError
from clarifylab.metrics.action_metrics import action_metrics
from clarifylab.metrics.task_heuristics import (
    OutcomeReporting,
    TaskHeuristic,
    heuristic_for,
    score_outcomes,
    score_turns,
)

log = logging.getLogger(__name__)

ALL_INTERPRETATION_TASKS = frozenset({"abg_coqa"})
"""Tasks evaluated once per gold interpretation (ACT App. D, Abg-CoQA)."""


@dataclass
class TrajectoryRecord:
    """One evaluated trajectory (one line of ``trajectories.jsonl``).

    ``turn_h`` is H(y, r) of the example's first response (the same for every interpretation of one
    example); ``trajectory_h`` is H(outcome, goal). ``turns`` is the continuation after the prompt
    (assistant, user, ..., assistant), ``actions`` the classified action of each assistant turn and
    ``degenerate_replies`` what each simulated user turn copied (None: a genuine reply).
    """

    id: str
    task: str
    interpretation: int
    gold_action: str
    predicted_action: str
    first_response: str
    turn_h: float
    outcome: str
    goal: str
    trajectory_h: float
    n_clarifications: int
    hit_turn_limit: bool
    turns: list[dict[str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    degenerate_replies: list[str | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class EvalResult:
    """Per-trajectory records and the summary metrics (see :func:`summarize`)."""

    records: list[TrajectoryRecord]
    summary: dict[str, Any] = field(default_factory=dict)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def resolve_interpretations(mode: str, examples: Sequence[Example]) -> str:
    """``"first"``/``"all"`` as given; ``"auto"`` -> ``"all"`` if any example's task is in
    :data:`ALL_INTERPRETATION_TASKS`, else ``"first"``."""
    if mode == "auto":
        return "all" if any(e.task in ALL_INTERPRETATION_TASKS for e in examples) else "first"
    if mode not in ("first", "all"):
        raise ConfigError(f"interpretations={mode!r} is not one of ['first', 'all', 'auto']")
    return mode


def summarize(records: Sequence[TrajectoryRecord], heuristic: str | None = None) -> dict[str, Any]:
    """The papers' columns from trajectory records (module docstring for the definitions).

    Returns:
        ``accuracy``, ``macro_f1``, ``clarify_precision``, ``clarify_recall``, ``clarify_f1``, ``n``
        (decision points scored at the action level: the first record of each example id, whose
        ``predicted_action`` all its trajectories share); ``turn_h`` (mean over unique example ids),
        ``trajectory_h``, ``post_clarify_h`` (None when no trajectory clarified), the trajectory H split
        by gold action (``trajectory_h_gold_clarify`` / ``_gold_answer``, None when empty), counts
        ``n_examples``, ``n_trajectories``, ``n_post_clarify``, ``n_gold_clarify``, rates
        ``clarify_rate`` (trajectories with >= 1 clarification), ``turn_limit_rate``, and
        ``mean_assistant_turns``; the simulator's degenerate replies: ``n_sim_replies``,
        ``n_sim_degenerate``, ``sim_degenerate_rate`` (None without simulated replies),
        ``sim_copies_question`` / ``_history`` / ``_goal`` / ``_instructions`` and
        ``n_trajectories_sim_degenerate``; plus ``heuristic`` (H's name) when given.
    """
    if not records:
        raise ValueError("summarize: no trajectories to summarize (check the dataset split / max_examples)")
    summary: dict[str, Any] = {"heuristic": heuristic} if heuristic else {}
    first_per_example: dict[str, TrajectoryRecord] = {}
    for record in records:
        first_per_example.setdefault(record.id, record)
    decisions = list(first_per_example.values())
    summary.update(action_metrics([r.gold_action for r in decisions], [r.predicted_action for r in decisions]))
    post = [r.trajectory_h for r in records if r.n_clarifications > 0]
    by_gold = {action: [r.trajectory_h for r in records if r.gold_action == action.value] for action in Action}
    summary.update(
        turn_h=_mean([r.turn_h for r in first_per_example.values()]),
        trajectory_h=_mean([r.trajectory_h for r in records]),
        post_clarify_h=_mean(post),
        trajectory_h_gold_clarify=_mean(by_gold[Action.CLARIFY]),
        trajectory_h_gold_answer=_mean(by_gold[Action.ANSWER]),
        n_examples=len(first_per_example),
        n_trajectories=len(records),
        n_post_clarify=len(post),
        n_gold_clarify=len(by_gold[Action.CLARIFY]),
        clarify_rate=len(post) / len(records),
        turn_limit_rate=sum(r.hit_turn_limit for r in records) / len(records),
        mean_assistant_turns=sum(len(r.actions) for r in records) / len(records),
    )
    flags = [flag for r in records for flag in r.degenerate_replies]
    degenerate = [flag for flag in flags if flag is not None]
    summary.update(
        n_sim_replies=len(flags),
        n_sim_degenerate=len(degenerate),
        sim_degenerate_rate=len(degenerate) / len(flags) if flags else None,
        **{f"sim_copies_{source}": degenerate.count(source) for source in SOURCES},
        n_trajectories_sim_degenerate=sum(any(f is not None for f in r.degenerate_replies) for r in records),
    )
    return summary


def _group_by_task(examples: Sequence[Any], tasks: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault(task, []).append(i)
    return groups


def outcome_columns(heuristics: dict[str, TaskHeuristic], counts: dict[str, collections.Counter[str]]
                    ) -> dict[str, int]:
    """``<prefix>_<code>_<level>`` -> count, for every :class:`OutcomeReporting` heuristic in ``heuristics``,
    every code it declares (0 when not seen) and both levels (``counts`` maps ``"turn"`` / ``"trajectory"`` to
    the codes counted at that level)."""
    columns: dict[str, int] = {}
    for heuristic in heuristics.values():
        if isinstance(heuristic, OutcomeReporting):
            for code in heuristic.outcome_codes:
                for level in ("turn", "trajectory"):
                    columns[f"{heuristic.outcome_prefix}_{code}_{level}"] = counts[level][code]
    return columns


def _pop_outcomes(heuristic: TaskHeuristic, counter: collections.Counter[str]) -> None:
    if isinstance(heuristic, OutcomeReporting):
        counter.update(heuristic.pop_outcomes())


def evaluate_policy(
    policy: ChatBackend,
    examples: Sequence[Example],
    classifier: ActionClassifier,
    simulator: UserSimulator,
    *,
    max_turns: int = 3,
    params: SamplingParams = SamplingParams(max_new_tokens=64),
    instruction: str | None = None,
    interpretations: str = "auto",
    heuristics: dict[str, TaskHeuristic] | None = None,
    heuristic_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``policy`` on ``examples`` (module docstring).

    Args:
        policy: any chat backend (a local model, an endpoint, a prompting baseline wrapper).
        examples: decision points (one dataset split).
        classifier: A, labels every assistant turn.
        simulator: U, answers clarifying questions.
        max_turns: assistant turns per trajectory at most (the first response included).
        params: the policy's decoding.
        instruction: overrides the task's system instruction.
        interpretations: ``"first"``, ``"all"`` or ``"auto"`` (see :func:`resolve_interpretations`).
        heuristics: task -> H to use (default: :func:`heuristic_for` each task with ``heuristic_options``,
            e.g. ``{"data_dir": ...}`` for ambigsql).
        progress: progress bar over trajectories.

    Policy calls: one for all first responses, then one per simulation round (``<= max_turns``).
    """
    if not examples:
        raise ConfigError("evaluate_policy: no examples to evaluate (check the dataset split and max_examples)")
    mode = resolve_interpretations(interpretations, examples)
    started = time.perf_counter()
    first = policy.complete([prompt_messages(e, instruction) for e in examples], params)
    first_actions = classifier.classify(first, list(examples))
    trajectories = rollout(policy, examples, classifier, simulator, max_turns=max_turns, params=params,
                           instruction=instruction, interpretations=mode, first_responses=first,
                           first_actions=first_actions, progress=progress)

    heuristics = dict(heuristics or {})
    for task in sorted({e.task for e in examples}):
        heuristics.setdefault(task, heuristic_for(task, **(heuristic_options or {})))
        _pop_outcomes(heuristics[task], collections.Counter())  # a passed-in heuristic's earlier calls do not count
    counts: dict[str, collections.Counter[str]] = {"turn": collections.Counter(), "trajectory": collections.Counter()}
    turn_h = [0.0] * len(examples)
    for task, indices in _group_by_task(examples, [e.task for e in examples]).items():
        scores = score_turns(task, [first[i] for i in indices], [examples[i] for i in indices], heuristics[task])
        _pop_outcomes(heuristics[task], counts["turn"])
        for i, score in zip(indices, scores):
            turn_h[i] = score
    turn_h_by_example = {id(e): h for e, h in zip(examples, turn_h)}
    trajectory_h = [0.0] * len(trajectories)
    for task, indices in _group_by_task(trajectories, [t.example.task for t in trajectories]).items():
        scores = score_outcomes(task, [trajectories[i].outcome for i in indices],
                                [trajectories[i].example for i in indices],
                                [trajectories[i].interpretation for i in indices], heuristics[task])
        _pop_outcomes(heuristics[task], counts["trajectory"])
        for i, score in zip(indices, scores):
            trajectory_h[i] = score

    records = [
        TrajectoryRecord(
            id=t.example.id, task=t.example.task, interpretation=t.interpretation, gold_action=t.example.action.value,
            predicted_action=t.first_action.value, first_response=t.first_response,
            turn_h=turn_h_by_example[id(t.example)], outcome=t.outcome, goal=t.goal, trajectory_h=h,
            n_clarifications=t.n_clarifications, hit_turn_limit=t.hit_turn_limit,
            turns=[dict(m) for m in t.turns], actions=[a.value for a in t.actions],
            degenerate_replies=list(t.degenerate_replies))
        for t, h in zip(trajectories, trajectory_h)]
    names = sorted({heuristics[task].name for task in heuristics})
    summary = summarize(records, heuristic="+".join(names))
    summary.update(outcome_columns(heuristics, counts))
    summary["interpretations"] = mode
    summary["max_turns"] = max_turns
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("evaluated %d trajectories of %d examples in %.1f s", len(records), len(examples), summary["seconds"])
    return EvalResult(records=records, summary=summary)
