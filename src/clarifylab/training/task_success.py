"""When an on-policy sample succeeds: the task heuristic H built from the config, and its success threshold.

ACT (Alg. 2, "heuristic tolerance" epsilon) and IRPO (correct vs incorrect samples) both turn H into a binary
success, ``H >= threshold``. Both build H here, from the run config (:func:`heuristic_from_config`:
``data_dir`` for AmbigSQL's databases, ``dataset.ignore_column_order``), and both read the threshold here
(:func:`success_threshold`), so the two trainers always score and cut the same way.

Success thresholds per task (:data:`SUCCESS_THRESHOLDS`; ``trainer.threshold`` overrides when not null):

==================  ======  ==================================================================================
task                value   why
==================  ======  ==================================================================================
pacific, tatqa      0.9     DROP F1 >= 0.9: the official ACT code's threshold (SPEC, "Reference numbers").
synthetic_tables    0.9     as PACIFIC (numeric exact match is 0 or 1; TAT-QA F1 for a text reference).
ambigsql            1.0     execution match is 0 or 1: success = the query returns the gold rows.
wtq                 1.0     denotation accuracy is 0 or 1.
abg_coqa            0.7     cosine similarity of all-MiniLM-L6-v2 embeddings, in [-1, 1]. The ACT paper gives
                            no value (a trajectory fails on "low semantic similarity", §3.2), so it is ours,
                            measured on the Abg-CoQA training pool (827 examples): gold answers of two
                            different interpretations of one question (113 pairs, the failures H must
                            reject) score >= 0.7 in 2.7 % of pairs (median 0.28; >= 0.8: 0.9 %), while a
                            correct answer written as a sentence ("The answer is X." vs X, 300 answers)
                            scores >= 0.7 in 76 % (>= 0.8: 61 %, >= 0.9: 14 %). 0.9 would make most
                            correct trajectories losers. ``trainer.threshold`` overrides it.
==================  ======  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from clarifylab.env.rollout import Trajectory
from clarifylab.errors import ConfigError
from clarifylab.metrics.task_heuristics import TaskHeuristic, heuristic_for, heuristic_options, score_outcomes

SUCCESS_THRESHOLDS: dict[str, float] = {
    "pacific": 0.9,
    "tatqa": 0.9,
    "synthetic_tables": 0.9,
    "ambigsql": 1.0,
    "wtq": 1.0,
    "abg_coqa": 0.7,
}
"""Task -> the H value at or above which an on-policy sample succeeds (module docstring)."""

TrajectoryScorer = Callable[[Sequence[Trajectory]], list[float]]


def success_threshold(task: str, override: float | None = None) -> float:
    """The success threshold of ``task``: ``override`` (``trainer.threshold``) when not None, else
    :data:`SUCCESS_THRESHOLDS` ``[task]``.

    Raises:
        ConfigError: no override and no threshold known for ``task``.
    """
    if override is not None:
        return float(override)
    if task not in SUCCESS_THRESHOLDS:
        raise ConfigError(f"no success threshold for task {task!r} (known: {sorted(SUCCESS_THRESHOLDS)}); set "
                          "trainer.threshold=<value> or add the task to "
                          "clarifylab.training.task_success.SUCCESS_THRESHOLDS")
    return SUCCESS_THRESHOLDS[task]


def heuristic_from_config(task: str, paths: Mapping[str, Any] | None,
                          dataset: Mapping[str, Any] | None = None) -> TaskHeuristic:
    """H of ``task`` with what it needs from the config's ``paths`` and ``dataset`` node
    (:func:`~clarifylab.metrics.task_heuristics.heuristic_options`: AmbigSQL's data dir and column-order option)."""
    return heuristic_for(task, **heuristic_options(paths, dataset))


def trajectory_scorer(paths: Mapping[str, Any] | None, dataset: Mapping[str, Any] | None = None) -> TrajectoryScorer:
    """``scorer(trajectories) -> [H of each outcome against its goal]`` (``score_outcomes`` per task, one H per
    task built once with :func:`heuristic_from_config` from ``paths`` and ``dataset``). A trajectory that ended on a
    clarifying question (turn limit) has no outcome and scores 0."""
    heuristics: dict[str, TaskHeuristic] = {}

    def scorer(trajectories: Sequence[Trajectory]) -> list[float]:
        scores = [0.0] * len(trajectories)
        for task in sorted({t.example.task for t in trajectories}):
            if task not in heuristics:
                heuristics[task] = heuristic_from_config(task, paths, dataset)
            rows = [i for i, t in enumerate(trajectories) if t.example.task == task]
            values = score_outcomes(task, [None if trajectories[i].hit_turn_limit else trajectories[i].outcome
                                           for i in rows],
                                    [trajectories[i].example for i in rows],
                                    [trajectories[i].interpretation for i in rows], heuristic=heuristics[task])
            for i, value in zip(rows, values):
                scores[i] = float(value)
        return scores

    return scorer
