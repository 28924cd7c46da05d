"""Batched trajectory simulation (ACT Alg. 2 lines 6-12; the multi-turn evaluation of ACT §4.2).

For every (example, interpretation) the policy responds to the prompt (y). While a trajectory's last
assistant turn is classified as a clarifying question and it has fewer than ``max_turns`` assistant
turns, the user simulator replies and the policy responds again. Each round makes one simulator call
and one policy call for all live trajectories, so a rollout costs ``1 + rounds`` policy calls whatever
the number of examples. The last assistant turn is the trajectory outcome g', scored later by a task
heuristic H against the goal of the trajectory's interpretation. Every simulated user reply is checked for
being a copy of the question, of an earlier turn or of the simulator's own goal text or prompt
(:mod:`clarifylab.env.degenerate_replies`); the verdicts travel with the trajectory.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example, Turn
from clarifylab.env.action_classifier import ActionClassifier
from clarifylab.env.degenerate_replies import copy_source
from clarifylab.env.user_simulator import (
    SimulatorRequest,
    UserSimulator,
    check_interpretation,
    gold_answer,
    own_texts,
)
from clarifylab.errors import ConfigError

logger = logging.getLogger(__name__)

INTERPRETATION_MODES = ("first", "all")
POLICY_PARAMS = SamplingParams(max_new_tokens=64)  # greedy


@dataclass
class Trajectory:
    """One simulated conversation continuation.

    Attributes:
        example: the decision point it starts from.
        interpretation: which gold clarification/goal it is scored against.
        first_response: the policy's immediate response y (turn level).
        first_action: A(y).
        turns: the continuation after the prompt: assistant, user, assistant, ...; ends with assistant.
        actions: the action of every assistant turn in ``turns``, in order.
        outcome: the final assistant turn (the trajectory outcome g').
        n_clarifications: assistant turns classified as clarify (a final clarification at the turn limit
            included).
        hit_turn_limit: the last assistant turn is still a clarification at ``max_turns``.
        degenerate_replies: one entry per simulated user turn in ``turns``: what the reply copied
            (``"question"``, ``"history"``, ``"goal"``, ``"instructions"``;
            :func:`~clarifylab.env.degenerate_replies.copy_source`)
            or None for a genuine reply.
    """

    example: Example
    interpretation: int
    first_response: str
    first_action: Action
    turns: list[Message]
    actions: list[Action]
    outcome: str
    n_clarifications: int
    hit_turn_limit: bool
    degenerate_replies: list[str | None] = field(default_factory=list)

    @property
    def goal(self) -> str:
        """The gold final answer of this trajectory's interpretation."""
        return gold_answer(self.example, self.interpretation)

    def messages(self, instruction: str | None = None) -> list[Message]:
        """The whole conversation as the policy saw it: prompt messages followed by ``turns``."""
        return prompt_messages(self.example, instruction) + [dict(m) for m in self.turns]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable record (example id instead of the whole example)."""
        return {"id": self.example.id, "task": self.example.task, "interpretation": self.interpretation,
                "gold_action": self.example.action.value, "first_response": self.first_response,
                "first_action": self.first_action.value, "turns": [dict(m) for m in self.turns],
                "actions": [a.value for a in self.actions], "outcome": self.outcome, "goal": self.goal,
                "n_clarifications": self.n_clarifications, "hit_turn_limit": self.hit_turn_limit,
                "degenerate_replies": list(self.degenerate_replies)}


def trajectory_starts(examples: Sequence[Example], interpretations: str) -> list[tuple[Example, int]]:
    """(example, interpretation) pairs to simulate, in example order.

    ``"first"``: interpretation 0 of every example. ``"all"``: one per gold clarification of a clarify
    example (Abg-CoQA has several), interpretation 0 for an example without clarifications.
    """
    if interpretations not in INTERPRETATION_MODES:
        raise ConfigError(f"rollout: interpretations must be one of {list(INTERPRETATION_MODES)}, "
                          f"got {interpretations!r}")
    starts = []
    for example in examples:
        count = max(1, len(example.clarifications)) if interpretations == "all" else 1
        starts += [(example, i) for i in range(count)]
    return starts


def expand_first_responses(first: Sequence[Any], examples: Sequence[Example], starts: Sequence[tuple[Example, int]],
                           what: str) -> list[Any]:
    """Align given first responses/actions with ``starts``: one per trajectory, or one per example
    (shared by that example's interpretations)."""
    if len(first) == len(starts):
        return list(first)
    if len(first) == len(examples):
        per_example = {id(e): value for e, value in zip(examples, first)}
        return [per_example[id(e)] for e, _ in starts]
    raise ConfigError(f"rollout: got {len(first)} {what} for {len(examples)} examples / {len(starts)} trajectories; "
                      "pass one per example or one per trajectory")


def per_example_instructions(instruction: str | None | Sequence[str | None],
                              examples: Sequence[Example]) -> list[str | None]:
    """One system-instruction override per example: ``instruction`` repeated when it is one value (None or a
    string), else the given sequence (which must have one entry per example)."""
    if instruction is None or isinstance(instruction, str):
        return [instruction] * len(examples)
    values = list(instruction)
    if len(values) != len(examples):
        raise ConfigError(f"rollout: got {len(values)} instructions for {len(examples)} examples; pass one value or "
                          "one per example")
    return values


def classification_example(example: Example, turns: Sequence[Message]) -> Example:
    """The example as a classifier should see the latest assistant turn: its history extended by the
    simulated turns before that assistant turn (so a few-shot classifier sees the whole dialogue)."""
    earlier = [Turn(m["role"], m["content"]) for m in turns[:-1]]
    return dataclasses.replace(example, history=list(example.history) + earlier) if earlier else example


def round_params(params: SamplingParams, round_index: int) -> SamplingParams:
    """``params`` with the seed shifted by the round (a sampled rollout stays reproducible without
    reusing one random stream for every round); unchanged when unseeded."""
    return params if params.seed is None else dataclasses.replace(params, seed=params.seed + round_index)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    """Yield ``advance(n)`` over finished trajectories; a rich bar when enabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("simulating trajectories", total=total)
        yield lambda n: bar.advance(task, n)


def rollout(policy: ChatBackend, examples: Sequence[Example], classifier: ActionClassifier,
            simulator: UserSimulator, *, max_turns: int = 3,
            params: SamplingParams = POLICY_PARAMS, instruction: str | None | Sequence[str | None] = None,
            interpretations: str = "first", first_responses: Sequence[str] | None = None,
            first_actions: Sequence[Action] | None = None, progress: bool = False) -> list[Trajectory]:
    """Simulate one trajectory per (example, interpretation) (ACT Alg. 2 lines 6-12), batched.

    Args:
        policy: the model being evaluated/trained.
        examples: decision points.
        classifier: A; labels every assistant turn.
        simulator: U; answers clarifying questions.
        max_turns: at most this many assistant turns per trajectory (the first response included).
        params: the policy's decoding; a seed is shifted by the round index.
        instruction: overrides the task's system instruction (see ``chat_format.instruction_for``); one value
            for all examples or one per example (pairs built with different instructions still roll out in one
            batch).
        interpretations: ``"first"`` or ``"all"`` (see :func:`trajectory_starts`).
        first_responses: already-sampled y (ACT training); skips the first policy call. One per
            trajectory or one per example.
        first_actions: A(y) for ``first_responses`` when already known; skips their classification.
        progress: show a rich progress bar.

    Returns:
        Trajectories in the order of :func:`trajectory_starts`. Greedy policies (and deterministic
        simulators/classifiers) give identical trajectories on every run.
    """
    if max_turns < 1:
        raise ConfigError(f"rollout: max_turns must be >= 1, got {max_turns}")
    if first_actions is not None and first_responses is None:
        raise ConfigError("rollout: first_actions needs first_responses")
    starts = trajectory_starts(examples, interpretations)
    for example, interpretation in starts:
        check_interpretation(example, interpretation)
    if not starts:
        return []
    started = time.perf_counter()
    instructions = expand_first_responses(per_example_instructions(instruction, examples), examples, starts,
                                          "instructions")
    prompts = [prompt_messages(example, value) for (example, _), value in zip(starts, instructions)]
    policy_calls = simulator_calls = 0

    if first_responses is None:
        first = policy.complete(prompts, round_params(params, 0))
        policy_calls += 1
    else:
        first = expand_first_responses(first_responses, examples, starts, "first_responses")
    if first_actions is None:
        actions0 = classifier.classify(first, [example for example, _ in starts])
    else:
        actions0 = expand_first_responses(first_actions, examples, starts, "first_actions")
    turns: list[list[Message]] = [[{"role": "assistant", "content": y}] for y in first]
    actions: list[list[Action]] = [[Action(a)] for a in actions0]
    copies: list[list[str | None]] = [[] for _ in starts]

    def live() -> list[int]:
        return [i for i in range(len(starts)) if actions[i][-1] is Action.CLARIFY and len(actions[i]) < max_turns]

    rounds = 0
    with _progress(progress, len(starts)) as advance:
        active = live()
        advance(len(starts) - len(active))
        while active:
            rounds += 1
            requests = [SimulatorRequest(starts[i][0], starts[i][1], _dialogue(starts[i][0], turns[i])) for i in active]
            replies = simulator.reply(requests)
            simulator_calls += 1
            for i, request, reply in zip(active, requests, replies, strict=True):
                turns[i].append({"role": "user", "content": reply})
                copies[i].append(copy_source(reply, request.conversation, own_texts(simulator, request)))
            responses = policy.complete([prompts[i] + turns[i] for i in active], round_params(params, rounds))
            policy_calls += 1
            for i, response in zip(active, responses, strict=True):
                turns[i].append({"role": "assistant", "content": response})
            new_actions = classifier.classify(responses, [classification_example(starts[i][0], turns[i])
                                                          for i in active])
            for i, action in zip(active, new_actions, strict=True):
                actions[i].append(Action(action))
            still = live()
            advance(len(active) - len(still))
            active = still

    trajectories = [
        Trajectory(example=example, interpretation=interpretation, first_response=first[i], first_action=actions[i][0],
                   turns=turns[i], actions=actions[i], outcome=turns[i][-1]["content"],
                   n_clarifications=sum(a is Action.CLARIFY for a in actions[i]),
                   hit_turn_limit=actions[i][-1] is Action.CLARIFY, degenerate_replies=copies[i])
        for i, (example, interpretation) in enumerate(starts)]
    elapsed = max(time.perf_counter() - started, 1e-9)
    logger.info("rollout: %d trajectories in %.2f s (%.2f conversations/s); %d rounds, %d policy calls, "
                "%d simulator calls; %d asked for clarification, %d hit the turn limit (%d); %d of %d simulated "
                "replies were copies", len(trajectories), elapsed, len(trajectories) / elapsed, rounds, policy_calls,
                simulator_calls, sum(t.n_clarifications > 0 for t in trajectories),
                sum(t.hit_turn_limit for t in trajectories), max_turns,
                sum(flag is not None for c in copies for flag in c), sum(len(c) for c in copies))
    return trajectories


def _dialogue(example: Example, turns: Sequence[Message]) -> list[Message]:
    """History + simulated turns, no system message (what a user simulator sees)."""
    return [{"role": t.role, "content": t.content} for t in example.history] + [dict(m) for m in turns]
