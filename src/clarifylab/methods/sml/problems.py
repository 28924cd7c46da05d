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
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from clarifylab.data.schema import Action, Example, Turn
from clarifylab.data.synthetic.phrasing import render_question
from clarifylab.data.synthetic.questions import QuestionSpec
from clarifylab.errors import DataFormatError

SUPPORTED_TASKS = ("synthetic_tables",)

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


def build_problems(examples: Sequence[Example], seed: int = 0, max_problems: int | None = None) -> list[SMLProblem]:
    """Problems for the first ``max_problems`` examples (all when None), in order."""
    unsupported = sorted({e.task for e in examples} - set(SUPPORTED_TASKS))
    if unsupported:
        raise DataFormatError(f"SML problems are built for {list(SUPPORTED_TASKS)} only; got examples of "
                              f"{unsupported}")
    chosen = list(examples)[:max_problems] if max_problems else list(examples)
    return [problem_from_synthetic(e, seed) for e in chosen]
