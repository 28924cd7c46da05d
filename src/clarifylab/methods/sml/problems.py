"""SML problems: a fully specified question, its solution (the teacher's private information) and its
sharded twin (the same question cut into pieces, revealed one per user turn; Cook et al., §3; the
"sharded" evaluation of Laban et al., 2025).

Training and evaluation problems come from the same task family (the embedded ``synthetic_tables``
corpus) and differ exactly in specification: training shows the whole question in the first user turn;
the sharded variant shows an intent without any slot value first (:func:`shard_spec`) and one slot value
per later turn, so the information needed to answer arrives only over the conversation.

A synthetic Example stores its :class:`~clarifylab.data.synthetic.questions.QuestionSpec` in
``meta["question"]``; every example (clarify or answer in the source corpus) becomes a fully specified
problem, its history dropped.

**TAT-QA** (``dataset=tatqa``; :func:`problem_from_tatqa`): every question is fully specified; its sharded twin is
cut with the teacher-student ablation's span finder (:func:`~clarifylab.data.ablation_strategies.question_spans`:
periods, entities quoted from the table, units): the first shard is the question with every span removed, then one
shard per span (seeded order). Questions without a removable span have no underspecified form and are skipped
(counted in the log). The teacher's solution is the question with the answer as TAT-QA renders it (derivation
included); ``answer`` (the leak check and the answer log-prob) is the bare answer: the number for arithmetic and
count questions, the span(s) otherwise. H is the TAT-QA scorer, on the loader's Example. :func:`load_problems`
loads a split with the table grids the span finder needs; it is the one problem source of the trainer
(``trainer=sml``), the sharded evaluation (``protocol=sml_sharded``) and the offline builders
(``task=sml_dialogues`` / ``q_priming``).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clarifylab.data.ablation_strategies import question_spans
from clarifylab.data.registry import load_dataset_split
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.synthetic.phrasing import render_question
from clarifylab.data.synthetic.questions import QuestionSpec
from clarifylab.data.table_tasks import TableTask, load_tatqa_tasks
from clarifylab.errors import DataFormatError

log = logging.getLogger(__name__)

SUPPORTED_TASKS = ("synthetic_tables", "tatqa")

# The first shard says what kind of number is wanted but names no company, metric or year.
INTENTS: dict[str, str] = {
    "lookup": "I need one figure from the table.",
    "difference": "I want to know how much a figure changed between two years.",
    "ratio_metrics": "I need the ratio of two of a company's figures in one year.",
    "ratio_years": "I want to know by what factor a figure grew between two years.",
    "sum": "I need a total over all companies.",
}
SLOT_TEXTS: dict[str, str] = {
    "entity": "It is about {entity}.",
    "metric": "The figure is {metric}.",
    "numerator": "The first figure (the numerator) is {metric}.",
    "denominator": "The second figure (the denominator) is {denominator}.",
    "year": "The year is {year}.",
    "years": "From {year} to {end_year}.",
}
VARIANT_SLOTS: dict[str, tuple[str, ...]] = {
    "lookup": ("entity", "metric", "year"),
    "difference": ("entity", "metric", "years"),
    "ratio_metrics": ("entity", "numerator", "denominator", "year"),
    "ratio_years": ("entity", "metric", "years"),
    "sum": ("metric", "year"),
}


@dataclass(frozen=True)
class Shard:
    """One piece of a sharded problem: the slot it reveals (``intent`` for the first) and its text."""

    slot: str
    text: str


@dataclass
class SMLProblem:
    """One problem.

    Attributes:
        id: the source example id.
        task: the task (H is chosen by it).
        context: the linearized table.
        question: the fully specified question (training's first user turn).
        answer: the gold answer (scored by H; never shown to the student).
        solution: the teacher's private information: what the question asks for and the answer.
        shards: the sharded variant; ``shards[0]`` is the underspecified first turn.
        example: an answer Example (history = the full question, goal = [answer]) that H scores against.
    """

    id: str
    task: str
    context: str
    question: str
    answer: str
    solution: str
    shards: list[Shard] = field(default_factory=list)
    example: Example | None = None


def shard_spec(spec: QuestionSpec, rng: random.Random) -> list[Shard]:
    """The sharded form of ``spec``: the intent first, then one shard per slot value in a seeded order.

    Every slot the question needs appears in exactly one shard; together they determine ``spec``.
    """
    values = {"entity": spec.entity, "metric": spec.metric, "denominator": spec.denominator, "year": spec.year,
              "end_year": spec.end_year}
    slots = list(VARIANT_SLOTS[spec.variant])
    rng.shuffle(slots)
    return [Shard("intent", INTENTS[spec.variant])] + [Shard(s, SLOT_TEXTS[s].format(**values)) for s in slots]


def solution_text(question: str, answer: str) -> str:
    """The teacher's private information (written into its system prompt, never the student's)."""
    return f"The question is: {question} The correct answer is {answer}."


def problem_from_synthetic(example: Example, seed: int = 0) -> SMLProblem:
    """The fully specified problem (and its shards) behind a ``synthetic_tables`` Example; the wording and
    the shard order are drawn from a stream seeded by ``(seed, example.id)``.

    Raises:
        DataFormatError: the example is of another task or has no ``meta["question"]``.
    """
    if example.task != "synthetic_tables" or not isinstance(example.meta.get("question"), dict):
        raise DataFormatError(f"example {example.id!r} ({example.task}): SML problems need a synthetic_tables "
                              "example with meta['question'] (a QuestionSpec)")
    spec = QuestionSpec.from_dict(example.meta["question"])
    rng = random.Random(f"sml/{seed}/{example.id}")
    question = render_question(spec, rng)
    answer = example.goal[0]
    gold = Example(id=example.id, task=example.task, context=example.context, history=[Turn("user", question)],
                   response=answer, action=Action.ANSWER, goal=[answer],
                   meta={"split": example.meta.get("split"), "question": spec.to_dict(), "sml": True})
    return SMLProblem(id=example.id, task=example.task, context=example.context, question=question, answer=answer,
                      solution=solution_text(question, answer), shards=shard_spec(spec, rng), example=gold)


SPAN_SHARDS: dict[str, str] = {"period": "I mean {span}.", "entity": "It is about {span}.",
                               "unit": "The answer should be in {span}."}
"""What the user says to reveal a cut question span, by its kind (``question_spans``)."""


def _tidy(text: str) -> str:
    """Single spaces, none before punctuation."""
    return re.sub(r"\s+([?.,!;:])", r"\1", re.sub(r"\s+", " ", text)).strip()


def tatqa_answer(meta: Mapping[str, Any]) -> str:
    """The bare TAT-QA answer: the number of an arithmetic / count question (``-12.6``, ``12`` for ``12.0``), the
    span, or the spans joined by ``", "``."""
    answer = meta["answer"]
    if isinstance(answer, list):
        return ", ".join(str(a) for a in answer)
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer)


def problem_from_tatqa(task: TableTask, seed: int = 0) -> SMLProblem | None:
    """The problem of a TAT-QA question (module docstring), or None when it has no removable span.

    Shard 0 is the question with every span of :func:`question_spans` cut (:func:`_tidy`); shards 1.. reveal one
    span each (:data:`SPAN_SHARDS`), in an order drawn from ``random.Random(f"sml/{seed}/{task.id}")``.
    """
    spans = question_spans(task)
    if not spans:
        return None
    question = task.question
    cut = question
    for _, start, end in sorted(spans, key=lambda s: -s[1]):
        cut = cut[:start] + " " + cut[end:]
    rng = random.Random(f"sml/{seed}/{task.id}")
    order = list(spans)
    rng.shuffle(order)
    shards = [Shard("intent", _tidy(cut))] + [
        Shard(kind, SPAN_SHARDS[kind].format(span=_unit(question[start:end]) if kind == "unit"
                                             else question[start:end].strip()))
        for kind, start, end in order]
    example = task.example
    return SMLProblem(id=example.id, task=example.task, context=example.context, question=question,
                      answer=tatqa_answer(example.meta), solution=solution_text(question, example.goal[0]),
                      shards=shards, example=example)


def _unit(span: str) -> str:
    """A unit span as said after "in": ``" (in millions)"`` -> ``millions``, ``" percentage "`` -> ``percentage``."""
    return re.sub(r"^in\s+", "", span.strip(" ()"), flags=re.I)


def build_problems(examples: Sequence[Example], seed: int = 0, max_problems: int | None = None,
                   tasks: Mapping[str, TableTask] | None = None) -> list[SMLProblem]:
    """Problems for the examples in order, at most ``max_problems`` (all when None).

    ``tasks``: the TAT-QA questions' :class:`TableTask` by id (the table grids), needed for ``tatqa`` examples
    (:func:`load_problems` passes them); a TAT-QA question without a removable span is skipped and counted.
    """
    unsupported = sorted({e.task for e in examples} - set(SUPPORTED_TASKS))
    if unsupported:
        raise DataFormatError(f"SML problems are built for {list(SUPPORTED_TASKS)} only; got examples of "
                              f"{unsupported}")
    problems: list[SMLProblem] = []
    skipped = 0
    for example in examples:
        if max_problems and len(problems) >= max_problems:
            break
        if example.task == "synthetic_tables":
            problems.append(problem_from_synthetic(example, seed))
            continue
        if tasks is None or example.id not in tasks:
            raise DataFormatError(f"TAT-QA example {example.id!r} has no table grid: build TAT-QA problems with "
                                  "load_problems (it passes the grids), as trainer=sml, protocol=sml_sharded and "
                                  "task=sml_dialogues / q_priming do")
        problem = problem_from_tatqa(tasks[example.id], seed)
        skipped += problem is None
        if problem is not None:
            problems.append(problem)
    if skipped:
        log.info("SML problems: %d TAT-QA questions skipped (no period, entity or unit to shard)", skipped)
    return problems


def load_problems(dataset_cfg: Any, split: str, paths: Any, seed: int, max_problems: int | None = None,
                  max_examples: int | None = None) -> list[SMLProblem]:
    """The problems of ``split`` of ``dataset_cfg`` (``synthetic_tables`` or ``tatqa``): the split's Examples
    (:func:`~clarifylab.data.registry.load_dataset_split`, the first ``max_examples``) and, for TAT-QA, the table
    grids from the same file (:func:`~clarifylab.data.table_tasks.load_tatqa_tasks`)."""
    examples = load_dataset_split(dataset_cfg, split, paths, max_examples=max_examples)
    tasks = None
    if dataset_cfg.name == "tatqa":
        tasks = {t.id: t for t in load_tatqa_tasks(dataset_cfg.path, dataset_cfg.max_context_chars)}
    return build_problems(examples, seed, max_problems, tasks)
