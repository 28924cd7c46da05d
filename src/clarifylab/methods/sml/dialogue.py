"""Pedagogical dialogues on fully specified problems (Cook et al., §3), batched, with optional Q-priming.

Round ``k = 1 .. max_student_turns``: every live dialogue's student attempt comes from one student call
(public history only: system = instruction + table, the question, its own earlier turns, the teacher's
feedback). H scores each attempt; a correct one ends the dialogue (``success_turn = k``). A wrong one
gets teacher feedback (one teacher call for all), written with the private solution; feedback that
contains the answer (:func:`~clarifylab.methods.sml.teacher.leaks_answer`) is counted and, per
``leak_policy``, either ends the dialogue as ``leaked`` (the builders drop it) or is replaced by a fixed
hint (online RL, where the group must stay whole).

Q-priming (``q_priming_base`` set): a wrong attempt at turn ``k`` is, with probability
``q_priming_base ** k`` (:func:`replacement_probability`), replaced in the public history by the question the
teacher writes for the student with its private knowledge; the teacher then answers that question. The
student's later inputs see only the question and the reply, never the wrong attempt or the teacher's prompt.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.chat_format import system_message
from clarifylab.errors import ConfigError
from clarifylab.methods.sml import teacher as T
from clarifylab.methods.sml.problems import SMLProblem
from clarifylab.metrics.task_heuristics import score_outcomes
from clarifylab.training.task_success import heuristic_from_config, success_threshold

LEAK_POLICIES = ("drop", "replace")
STUDENT = "student"
TEACHER = "teacher"
TEACHER_QUESTION = "teacher_question"  # a question the teacher wrote, shown as the student's turn (Q-priming)

Scorer = Callable[[Sequence[SMLProblem], Sequence[str]], list[bool]]


@dataclass
class Dialogue:
    """One dialogue.

    Attributes:
        problem: the problem.
        turns: the public turns after the system message: the question, then student / teacher turns.
        authors: per turn ``"user"`` (the question), ``"student"``, ``"teacher"`` or ``"teacher_question"``.
        success_turn: the student turn (1-based) whose answer was correct; None if none was.
        leaks: teacher messages that contained the answer.
        leaked: the dialogue ended because of a leak (``leak_policy="drop"``).
        replaced_turns: student turns replaced by a teacher question (Q-priming).
        attempts: every student attempt as generated (replaced ones included), in order.
    """

    problem: SMLProblem
    turns: list[Message]
    authors: list[str]
    success_turn: int | None = None
    leaks: int = 0
    leaked: bool = False
    replaced_turns: list[int] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

    @property
    def student_turns(self) -> int:
        """Assistant turns in the public history (teacher-written questions included)."""
        return sum(m["role"] == "assistant" for m in self.turns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON record (problem id instead of the problem)."""
        return {"id": self.problem.id, "turns": [dict(m) for m in self.turns], "authors": list(self.authors),
                "success_turn": self.success_turn, "leaks": self.leaks, "leaked": self.leaked,
                "replaced_turns": list(self.replaced_turns), "attempts": list(self.attempts)}


def replacement_probability(turn: int, base: float) -> float:
    """Q-priming's chance of replacing a wrong student attempt at turn ``turn`` (1-based): ``base ** turn``."""
    if turn < 1:
        raise ValueError(f"turn is 1-based, got {turn}")
    return float(base ** turn)


def draws_replacement(rng: random.Random, turn: int, base: float) -> bool:
    """One Bernoulli(``base ** turn``) draw from ``rng``."""
    return rng.random() < replacement_probability(turn, base)


def heuristic_scorer(paths: Any = None, threshold: float | None = None) -> Scorer:
    """``scorer(problems, replies) -> [H(reply) >= threshold]``, H and the threshold of each problem's task."""

    heuristics: dict[str, Any] = {}

    def scorer(problems: Sequence[SMLProblem], replies: Sequence[str]) -> list[bool]:
        out = [False] * len(problems)
        for task in sorted({p.task for p in problems}):
            if task not in heuristics:
                heuristics[task] = heuristic_from_config(task, paths)
            rows = [i for i, p in enumerate(problems) if p.task == task]
            values = score_outcomes(task, [replies[i] for i in rows], [problems[i].example for i in rows],
                                    [0] * len(rows), heuristic=heuristics[task])
            cut = success_threshold(task, threshold)
            for i, value in zip(rows, values):
                out[i] = value >= cut
        return out

    return scorer


def student_prompt(problem: SMLProblem, turns: Sequence[Message], instruction: str | None) -> list[Message]:
    """What the student sees: system (instruction + table) and the public turns."""
    return [system_message(problem.example, instruction)] + [dict(m) for m in turns]


def _params(params: SamplingParams, round_index: int) -> SamplingParams:
    if params.seed is None:
        return params
    return SamplingParams(params.max_new_tokens, params.temperature, params.top_p, params.seed + 1009 * round_index)


def run_dialogues(student: ChatBackend, teacher: ChatBackend, problems: Sequence[SMLProblem], scorer: Scorer, *,
                  max_student_turns: int = 4, student_params: SamplingParams = SamplingParams(max_new_tokens=48),
                  teacher_params: SamplingParams = SamplingParams(max_new_tokens=64),
                  instruction: str | None = None, leak_policy: str = "drop",
                  q_priming_base: float | None = None, rngs: Sequence[random.Random] | None = None) -> list[Dialogue]:
    """Simulate one dialogue per problem (module docstring); ``problems`` may repeat a problem (a group).

    Args:
        rngs: one random stream per dialogue for the Q-priming draws (default: seeded by position).

    Returns:
        Dialogues in input order.
    """
    if max_student_turns < 1:
        raise ConfigError(f"max_student_turns must be >= 1, got {max_student_turns}")
    if leak_policy not in LEAK_POLICIES:
        raise ConfigError(f"leak_policy={leak_policy!r} is not one of {list(LEAK_POLICIES)}")
    if q_priming_base is not None and not 0 <= q_priming_base <= 1:
        raise ConfigError(f"q_priming_base must be in [0, 1], got {q_priming_base}")
    rngs = list(rngs) if rngs is not None else [random.Random(i) for i in range(len(problems))]
    dialogues = [Dialogue(p, [{"role": "user", "content": p.question}], ["user"]) for p in problems]
    live = list(range(len(problems)))
    for k in range(1, max_student_turns + 1):
        if not live:
            break
        replies = student.complete([student_prompt(dialogues[i].problem, dialogues[i].turns, instruction)
                                    for i in live], _params(student_params, k))
        correct = scorer([dialogues[i].problem for i in live], replies)
        wrong: list[int] = []
        for i, reply, ok in zip(live, replies, correct, strict=True):
            d = dialogues[i]
            d.attempts.append(reply)
            d.turns.append({"role": "assistant", "content": reply})
            d.authors.append(STUDENT)
            if ok:
                d.success_turn = k
            elif k < max_student_turns:
                wrong.append(i)
        if not wrong:
            break
        replaced = [i for i in wrong if q_priming_base is not None and draws_replacement(rngs[i], k, q_priming_base)]
        if replaced:
            _replace_with_questions([dialogues[i] for i in replaced], teacher, teacher_params, k, leak_policy)
        plain = [i for i in wrong if i not in set(replaced)]  # wrong attempts that get feedback
        if plain:
            prompts = [T.feedback_prompt(dialogues[i].problem.context, dialogues[i].problem.solution,
                                         dialogues[i].turns) for i in plain]
            for i, feedback in zip(plain, teacher.complete(prompts, _params(teacher_params, k)), strict=True):
                _add_teacher_turn(dialogues[i], feedback, leak_policy)
        live = [i for i in wrong if not dialogues[i].leaked]
    return dialogues


def _add_teacher_turn(dialogue: Dialogue, text: str, leak_policy: str) -> None:
    if T.leaks_answer(text, dialogue.problem.answer):
        dialogue.leaks += 1
        if leak_policy == "drop":
            dialogue.leaked = True
            return
        text = T.FALLBACK_FEEDBACK
    dialogue.turns.append({"role": "user", "content": text})
    dialogue.authors.append(TEACHER)


def _replace_with_questions(dialogues: Sequence[Dialogue], teacher: ChatBackend, params: SamplingParams, k: int,
                            leak_policy: str) -> None:
    """Q-priming at turn ``k``: the wrong attempt (last turn) becomes the teacher's question; the teacher replies."""
    questions = teacher.complete([T.question_prompt(d.problem.context, d.problem.solution, d.turns)
                                  for d in dialogues], _params(params, 100 + k))
    for d, question in zip(dialogues, questions, strict=True):
        question = question.strip()
        if T.leaks_answer(question, d.problem.answer) or not question.endswith("?"):
            d.leaks += int(T.leaks_answer(question, d.problem.answer))
            question = T.FALLBACK_QUESTION
        d.turns[-1] = {"role": "assistant", "content": question}
        d.authors[-1] = TEACHER_QUESTION
        d.replaced_turns.append(k)
    replies = teacher.complete([T.reply_prompt(d.problem.context, d.problem.solution, d.turns[:-1],
                                               d.turns[-1]["content"]) for d in dialogues], _params(params, 200 + k))
    for d, reply in zip(dialogues, replies, strict=True):
        _add_teacher_turn(d, reply, leak_policy)
