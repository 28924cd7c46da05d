"""Task heuristics H (ACT §3.2, §4.1, App. D): how well a response matches a gold reference, per task.

One heuristic per task, each scoring a batch of (prediction, references, example) triples in [0, 1]
(embedding similarity in [-1, 1]); ``references`` are alternative golds and the best one counts:

==================  ==================================================================================
task                H
==================  ==================================================================================
synthetic_tables    numeric exact match (:func:`~clarifylab.metrics.answer_match.exact_match`: the last
                    number in the response equals the gold number) when the reference is a number;
                    TAT-QA bag-of-words F1 when it is text (a clarifying question at the turn level).
                    Why not DROP F1 on numbers: every synthetic answer is one exact number, and the
                    TAT-QA variant sets F1 = EM for arithmetic answers anyway, but scores the whole
                    response, so "The answer is 20.6." would score 0 for a sentence-final period.
pacific             PACIFIC/TAT-QA DROP F1 (:func:`~clarifylab.metrics.drop_f1.tatqa_em_f1`) against the raw
                    gold answer with its scale and answer type from ``example.meta`` (:func:`pacific_gold`);
                    a derivation "a - b = c" is also read as "c" (:func:`pacific_candidates`).
abg_coqa            cosine similarity of all-MiniLM-L6-v2 embeddings (one batched encode per call; the
                    model is loaded once per process).
ambigsql            Spider execution match on ``<data_dir>/spider/database/<db_id>/<db_id>.sqlite`` of the
                    SQL extracted from the response (:func:`extract_sql`); 0 when the reference is not a
                    query (a gold clarifying question at the turn level) and when the response holds a
                    second statement (``SELECT ...; DROP TABLE t``: never executed, counted in
                    :meth:`ExecutionMatchHeuristic.details`). Option ``ignore_column_order``: Spider's
                    column-permutation rule (default: column order matters).
tatqa               as pacific (TAT-QA is PACIFIC's source: same answer fields and metric).
wtq                 denotation accuracy (:func:`~clarifylab.metrics.wtq_denotation.denotation_match`) against
                    ``meta["target_values"]`` (every target value, any order), else the reference itself.
==================  ==================================================================================

Entry points: :func:`score_outcomes` (trajectory outcome vs the goal of its interpretation),
:func:`score_turns` (first response vs the gold response r), :func:`score_outcome` (one outcome).
"""

from __future__ import annotations

import collections
import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from clarifylab.data.schema import Example
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.metrics.answer_match import exact_match, parse_number
from clarifylab.metrics.embedding_similarity import EmbeddingSimilarity
from clarifylab.metrics.sql_execution import (
    OUTCOME_CODES,
    QueryRejectedError,
    compare_execution,
    parse_read_only_query,
)
from clarifylab.metrics.wtq_denotation import denotation_match


@runtime_checkable
class OutcomeReporting(Protocol):
    """A heuristic that also says WHY each prediction scored what it did (e.g. the SQL scorer's
    ``multiple_statements``): the evaluator counts :meth:`pop_outcomes` after every scoring call and reports
    ``<outcome_prefix>_<code>_turn`` / ``_trajectory`` counts for every code in ``outcome_codes``."""

    outcome_prefix: str
    outcome_codes: tuple[str, ...]

    def pop_outcomes(self) -> list[str]:
        """One code per prediction of the latest ``score`` call (then cleared)."""
        ...


class TaskHeuristic(Protocol):
    """Scores predictions against references.

    Attributes:
        name: the metric's name in result tables (``drop_f1``, ``embedding_similarity``, ...).
    """

    name: str

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        """One score per prediction: the best over its alternative references."""
        ...


def _check_aligned(predictions: Sequence[str], references: Sequence[Sequence[str]],
                   examples: Sequence[Example]) -> None:
    if not len(predictions) == len(references) == len(examples):
        raise ValueError(f"task heuristic: {len(predictions)} predictions, {len(references)} reference lists and "
                         f"{len(examples)} examples; pass one of each per prediction")
    for refs, example in zip(references, examples):
        if isinstance(refs, str) or not refs:
            raise DataFormatError(f"example {example.id!r} ({example.task}): no gold reference to score against "
                                  f"(got {refs!r}); its loader must fill `goal` / `clarifications`")


# --------------------------------------------------------------------------------------------- synthetic tables


class SyntheticTablesHeuristic:
    """Numeric exact match for number references, TAT-QA bag F1 for text references (module docstring)."""

    name = "exact_match"

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        from clarifylab.metrics.drop_f1 import tatqa_em_f1  # scipy (0.6 s): see docs/architecture.md, imports

        _check_aligned(predictions, references, examples)
        scores = []
        for prediction, refs in zip(predictions, references):
            best = 0.0
            for ref in refs:
                if parse_number(ref) is not None:
                    best = max(best, exact_match(prediction, [ref]))
                else:
                    best = max(best, tatqa_em_f1(prediction, ref)[1])
            scores.append(best)
        return scores


# --------------------------------------------------------------------------------------------- PACIFIC


def pacific_gold(example: Example, reference: str) -> tuple[Any, str, str | None]:
    """``(gold answer, gold scale, answer type)`` to score against ``reference``.

    A reference that is the example's goal (``goal[0]``, the rendered answer, also each clarification's
    answer) is scored as the TAT-QA evaluator does: against the raw gold ``meta["goal_answer"]`` (list of
    spans, or a number) with ``meta["goal_scale"]`` and ``meta["goal_answer_type"]`` (the PACIFIC loader's
    fields). Any other reference (the gold clarifying question, at the turn level) is plain text: no
    scale, span F1.
    """
    meta = example.meta
    is_goal = reference in example.goal or any(reference == c.answer for c in example.clarifications)
    if is_goal and "goal_answer" in meta:
        answer_type = meta.get("goal_answer_type")
        return meta["goal_answer"], str(meta.get("goal_scale") or ""), str(answer_type) if answer_type else None
    return reference, "", None


_EQUATION_RESULT = re.compile(r"=\s*([^=]+?)\s*$")
_TRAILING_SCALE = re.compile(r"^(.*\S)\s+(thousand|million|billion|percent)s?\.?$", re.IGNORECASE)


def pacific_candidates(prediction: str, answer_type: str | None) -> list[tuple[Any, str]]:
    """Readings ``(answer, predicted scale)`` of a response to score (the best counts):

    - the response itself;
    - for a derivation ``"0.6/5.1 = 11.76%"`` (how the loader renders arithmetic answers, after ACT
      App. E), the text after the last ``=``;
    - a reading ending in a scale word (``"(87.4) thousand"``) also as the number with that word as the
      predicted scale — TAT-QA's number parser misses the scale after a parenthesised negative;
    - for a multi-span gold, the response split on ``", "`` (the loader's span separator; ``"1,000"``
      stays whole), and, when every span ends in the same scale word, the spans without it plus that scale.
    """
    texts = [prediction]
    result = _EQUATION_RESULT.search(prediction)
    if result:
        texts.append(result.group(1).rstrip(". "))
    candidates: list[tuple[Any, str]] = []
    for text in texts:
        candidates.append((text, ""))
        scaled = _TRAILING_SCALE.match(text.strip())
        if scaled:
            candidates.append((scaled.group(1), scaled.group(2).lower()))
    if answer_type == "multi-span" and ", " in prediction:
        spans = [span.strip() for span in prediction.split(", ") if span.strip()]
        candidates.append((spans, ""))
        scaled_spans = [_TRAILING_SCALE.match(span) for span in spans]
        if all(scaled_spans) and len({m.group(2).lower() for m in scaled_spans if m}) == 1:
            candidates.append(([m.group(1) for m in scaled_spans if m], scaled_spans[0].group(2).lower()))
    return candidates


class PacificHeuristic:
    """PACIFIC/TAT-QA DROP F1 (the metric of Deng et al., 2022 and ACT Table 1)."""

    name = "drop_f1"

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        from clarifylab.metrics.drop_f1 import tatqa_em_f1  # scipy (0.6 s): see docs/architecture.md, imports

        _check_aligned(predictions, references, examples)
        scores = []
        for prediction, refs, example in zip(predictions, references, examples):
            best = 0.0
            for ref in refs:
                gold, scale, answer_type = pacific_gold(example, ref)
                for candidate, pred_scale in pacific_candidates(prediction, answer_type):
                    try:
                        f1 = tatqa_em_f1(candidate, gold, gold_scale=scale, pred_scale=pred_scale,
                                         answer_type=answer_type)[1]
                    except ValueError as error:
                        raise DataFormatError(f"example {example.id!r} (pacific): {error}") from None
                    best = max(best, f1)
            scores.append(best)
        return scores


# --------------------------------------------------------------------------------------------- Abg-CoQA


@functools.lru_cache(maxsize=4)
def shared_embedding_similarity(model_path: str | None = None, device: str = "cpu") -> Any:
    """One :class:`~clarifylab.metrics.embedding_similarity.EmbeddingSimilarity` per (model, device) per
    process, so the sentence encoder is loaded once however many evaluations run."""
    return EmbeddingSimilarity(model_path=model_path, device=device)


class EmbeddingSimilarityHeuristic:
    """Sentence-embedding cosine similarity (Risch et al., 2021; ACT Table 2).

    Args:
        similarity: an object with ``score(predictions, references) -> list[float]``; default: the
            process-wide bundled all-MiniLM-L6-v2 (:func:`shared_embedding_similarity`).
    """

    name = "embedding_similarity"

    def __init__(self, similarity: Any | None = None) -> None:
        self._similarity = similarity

    @property
    def similarity(self) -> Any:
        """The scorer (loaded on first use)."""
        if self._similarity is None:
            self._similarity = shared_embedding_similarity()
        return self._similarity

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        """Max cosine over alternatives; every (prediction, reference) pair goes into ONE encode batch."""
        _check_aligned(predictions, references, examples)
        flat_predictions = [p for p, refs in zip(predictions, references) for _ in refs]
        flat_references = [r for refs in references for r in refs]
        flat_scores = self.similarity.score(flat_predictions, flat_references) if flat_predictions else []
        scores, start = [], 0
        for refs in references:
            scores.append(max(flat_scores[start:start + len(refs)]))
            start += len(refs)
        return scores


# --------------------------------------------------------------------------------------------- AmbigSQL

_SQL_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)```", re.IGNORECASE | re.DOTALL)
_SQL_START = re.compile(r"\b(?:select|with)\b", re.IGNORECASE)
_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
# A statement after a ";" outside a code block: an SQL verb followed by a space (prose such as "Hope it helps."
# or "Update: ..." is not one).
_STATEMENT_START = re.compile(
    r"(?:select|insert|update|delete|drop|create|alter|replace|pragma|attach|detach|begin|commit|rollback|"
    r"vacuum|reindex|savepoint|with\s+(?:recursive\s+)?\w+(?:\s*\([^)]*\))?\s+as)\s", re.IGNORECASE)


def sql_statements(response: str) -> list[str]:
    """The SQL statements of a model response, the query first (empty list: no SQL).

    1. In the first fenced code block (```` ```sql ... ``` ````, language tag optional): its text cut at
       ``;``, every non-blank part (comments ignored) a statement.
    2. Else the text from the first ``SELECT``/``WITH`` keyword: the query ends at the first ``;`` or blank
       line; after a ``;``, text that starts with an SQL verb (``DROP TABLE t``, ``SELECT ...``) is a further
       statement, anything else is prose and ends the SQL.
    3. Else the stripped response (it will not parse, and scores 0).
    """
    fenced = _SQL_FENCE.search(response)
    if fenced:
        return [part.strip() for part in fenced.group(1).split(";") if _SQL_COMMENT.sub("", part).strip()]
    start = _SQL_START.search(response)
    if start is None:
        return [response.strip()] if response.strip() else []
    statements, rest = [], response[start.start():]
    while True:
        query, separator, rest = _cut_statement(rest)
        statements.append(query.strip())
        rest = rest.lstrip()
        if separator != ";" or not _STATEMENT_START.match(rest + " "):
            return [statement for statement in statements if statement]


def _cut_statement(text: str) -> tuple[str, str, str]:
    """``(statement, separator, rest)``: ``text`` cut at its first ``;`` or blank line (separator "" at the end)."""
    parts = re.split(r"(;|\n\s*\n)", text, maxsplit=1)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", "")


def extract_sql(response: str) -> str:
    """The SQL in a model response (:func:`sql_statements`): the query, or, when the response holds several
    statements, all of them joined by ``";\n"`` so that execution rejects them (several statements score 0).

    >>> extract_sql("Here it is:\\n```sql\\nSELECT name FROM singer;\\n```")
    'SELECT name FROM singer'
    >>> extract_sql("Sure. select count(*) from singer; Hope it helps.")
    'select count(*) from singer'
    >>> extract_sql("SELECT name FROM singer; DROP TABLE singer")
    'SELECT name FROM singer;\\nDROP TABLE singer'
    """
    return ";\n".join(sql_statements(response))


def spider_db_path(data_dir: str | os.PathLike[str], example: Example) -> Path:
    """``<data_dir>/spider/database/<db_id>/<db_id>.sqlite`` for ``example.meta["db_id"]``."""
    db_id = example.meta.get("db_id")
    if not db_id:
        raise DataFormatError(f"example {example.id!r} ({example.task}) has no meta['db_id']; AmbigSQL examples "
                              f"must name their Spider database")
    return Path(data_dir) / "spider" / "database" / str(db_id) / f"{db_id}.sqlite"


def is_sql_query(text: str) -> bool:
    """True when ``text`` parses as exactly one read-only query."""
    try:
        parse_read_only_query(text)
    except QueryRejectedError:
        return False
    return True


class ExecutionMatchHeuristic:
    """Spider execution match of the extracted SQL (ACT Table 3).

    Args:
        data_dir: the folder holding ``spider/database`` (``paths.data_dir``).
        timeout_s: wall-clock limit per query.
        ignore_column_order: also accept the gold result with its columns permuted (the Spider test-suite
            rule; default False: column order matters).

    Attributes:
        last_outcomes: per prediction of the latest :meth:`score` call, the outcome code
            (:data:`~clarifylab.metrics.sql_execution.OUTCOME_CODES`; ``"no_query_reference"`` when no
            reference is a query, e.g. a gold clarifying question at the turn level).
        outcome_counts: the same codes counted over every call (``multiple_statements``: a response such as
            ``SELECT ...; DROP TABLE t``, scored 0); :meth:`details` returns them.
    """

    name = "execution_match"
    outcome_prefix = "sql"
    outcome_codes = (*OUTCOME_CODES, "no_query_reference")

    def __init__(self, data_dir: str | os.PathLike[str] | None, timeout_s: float = 5.0,
                 ignore_column_order: bool = False) -> None:
        self.data_dir = data_dir
        self.timeout_s = timeout_s
        self.ignore_column_order = ignore_column_order
        self.last_outcomes: list[str] = []
        self.outcome_counts: collections.Counter[str] = collections.Counter()

    def details(self) -> dict[str, int]:
        """Outcome code -> number of scored predictions so far (every :meth:`score` call of this instance)."""
        return dict(sorted(self.outcome_counts.items()))

    def pop_outcomes(self) -> list[str]:
        """The outcome codes of the latest :meth:`score` call (one per prediction), cleared so that a caller
        counting them per call (:class:`OutcomeReporting`) never counts one call twice."""
        outcomes, self.last_outcomes = self.last_outcomes, []
        return outcomes

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        _check_aligned(predictions, references, examples)
        if self.data_dir is None:
            raise ConfigError("the ambigsql heuristic needs data_dir (paths.data_dir, the folder with spider/database)")
        scores, outcomes = [], []
        for prediction, refs, example in zip(predictions, references, examples):
            db_path = spider_db_path(self.data_dir, example)
            sql = extract_sql(prediction)
            best, code = 0.0, "no_query_reference"
            for ref in refs:
                if is_sql_query(ref):  # a gold clarifying question (turn level) cannot be executed: 0
                    outcome = compare_execution(sql, ref, db_path, timeout_s=self.timeout_s,
                                                ignore_column_order=self.ignore_column_order)
                    if code == "no_query_reference" or outcome.score > best:
                        best, code = max(best, outcome.score), outcome.code
            scores.append(best)
            outcomes.append(code)
        self.last_outcomes = outcomes
        self.outcome_counts.update(outcomes)
        return scores


# --------------------------------------------------------------------------------------------- registry

# --------------------------------------------------------------------------------------------- WikiTableQuestions


class WtqHeuristic:
    """WTQ denotation accuracy: the response's values equal the gold target values as a set."""

    name = "denotation_accuracy"

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
              examples: Sequence[Example]) -> list[float]:
        _check_aligned(predictions, references, examples)
        scores = []
        for prediction, refs, example in zip(predictions, references, examples):
            targets = example.meta.get("target_values")  # WTQ examples have one goal: all their target values
            golds = [list(targets)] if targets else [[ref] for ref in refs]
            scores.append(max(denotation_match(prediction, gold) for gold in golds))
        return scores


HEURISTICS: dict[str, Callable[..., TaskHeuristic]] = {
    "synthetic_tables": lambda **options: SyntheticTablesHeuristic(),
    "pacific": lambda **options: PacificHeuristic(),
    "abg_coqa": lambda similarity=None, **options: EmbeddingSimilarityHeuristic(similarity),
    "ambigsql": lambda data_dir=None, ignore_column_order=False, **options: ExecutionMatchHeuristic(
        data_dir, ignore_column_order=bool(ignore_column_order)),
    "tatqa": lambda **options: PacificHeuristic(),
    "wtq": lambda **options: WtqHeuristic(),
}
"""Task name -> factory taking keyword options (``data_dir`` and ``ignore_column_order`` for ambigsql,
``similarity`` for abg_coqa; others are ignored)."""


def heuristic_options(paths: Mapping[str, Any] | None, dataset: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keyword options of :func:`heuristic_for` that come from a run config: ``data_dir`` (``paths.data_dir``,
    the folder with AmbigSQL's ``spider/database``) and, for ``dataset=ambigsql``, ``ignore_column_order``
    (``dataset.ignore_column_order`` in conf/dataset/ambigsql.yaml: Spider's column-permutation rule). The
    evaluation (``evaluation/policy_eval.py``) and the on-policy trainers (``training/task_success.py``) both
    build H from these, so a config option reaches every scorer."""
    options: dict[str, Any] = {"data_dir": (paths or {}).get("data_dir")}
    if dataset is not None and dataset["name"] == "ambigsql":
        options["ignore_column_order"] = bool(dataset["ignore_column_order"])
    return options


def heuristic_for(task: str, **options: Any) -> TaskHeuristic:
    """The heuristic H of ``task``.

    Raises:
        ConfigError: unknown task (the message lists the known ones).
    """
    if task not in HEURISTICS:
        raise ConfigError(f"no task heuristic for task {task!r}; known tasks: {sorted(HEURISTICS)}. Register one in "
                          f"clarifylab.metrics.task_heuristics.HEURISTICS")
    return HEURISTICS[task](**options)


def outcome_references(example: Example, interpretation: int = 0) -> list[str]:
    """Gold goal(s) of a trajectory: the answer of clarification ``interpretation`` when the example has
    one, else every alternative in ``example.goal``."""
    if 0 <= interpretation < len(example.clarifications):
        return [example.clarifications[interpretation].answer]
    if not example.goal:
        raise DataFormatError(f"example {example.id!r} ({example.task}) has an empty goal and no clarification "
                              f"{interpretation}; its loader must fill `goal`")
    return list(example.goal)


def _check_task(task: str, examples: Sequence[Example]) -> None:
    others = sorted({e.task for e in examples} - {task})
    if others:
        raise ValueError(f"scoring task {task!r} but the batch holds examples of {others}; score one task at a time")


def score_outcomes(task: str, predictions: Sequence[str | None], examples: Sequence[Example],
                   interpretations: Sequence[int], heuristic: TaskHeuristic | None = None,
                   **options: Any) -> list[float]:
    """Trajectory-level H: each outcome g' against the goal g of its interpretation (ACT App. D).

    A missing outcome (``None``: the trajectory ended without an answer) scores 0. ``heuristic``
    defaults to :func:`heuristic_for` ``(task, **options)``; pass one to reuse a loaded model.
    """
    if not len(predictions) == len(examples) == len(interpretations):
        raise ValueError(f"score_outcomes: {len(predictions)} outcomes, {len(examples)} examples, "
                         f"{len(interpretations)} interpretations; pass one of each per trajectory")
    _check_task(task, examples)
    heuristic = heuristic or heuristic_for(task, **options)
    scored = [i for i, p in enumerate(predictions) if p is not None]
    if not scored:
        return [0.0] * len(predictions)
    values = heuristic.score([str(predictions[i]) for i in scored],
                             [outcome_references(examples[i], interpretations[i]) for i in scored],
                             [examples[i] for i in scored])
    scores = [0.0] * len(predictions)
    for i, value in zip(scored, values):
        scores[i] = value
    return scores


def score_turns(task: str, responses: Sequence[str], examples: Sequence[Example],
                heuristic: TaskHeuristic | None = None, **options: Any) -> list[float]:
    """Turn-level H: each immediate response y against the gold response r of its example (ACT App. D;
    for a clarify example r is the gold clarifying question)."""
    _check_task(task, examples)
    if not examples:
        return []
    heuristic = heuristic or heuristic_for(task, **options)
    return heuristic.score(list(responses), [[e.response] for e in examples], list(examples))


def score_outcome(task: str, prediction: str | None, example: Example, interpretation: int = 0,
                  **options: Any) -> float:
    """H of one trajectory outcome against the goal of ``interpretation`` (see :func:`score_outcomes`)."""
    return score_outcomes(task, [prediction], [example], [interpretation], **options)[0]
