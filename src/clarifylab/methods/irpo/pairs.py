"""IRPO pairs (Pang et al., 2024, "Iterative Reasoning Preference Optimization"; the ACT paper's IRPO baseline).

One IRPO iteration t builds its training pairs from the current policy M_t:

1. **sample** — N responses per prompt from M_t at temperature > 0 (:func:`sample_candidates`; one batched,
   seeded ``complete`` call with every prompt repeated N times);
2. **label** — each response y gets a turn-level score (:func:`label_candidates`) and is *correct* when the
   score is ``>= threshold``. Its action ``A(y)`` (the action classifier) must match the gold action ``a_i``
   (else the score is 0, as ACT's Alg. 2 makes a wrong-action sample the loser). On an *answer* turn the score
   is the task heuristic ``H(y, r_i)`` against the gold answer (``metrics.task_heuristics.score_turns``). On a
   *clarify* turn it is 1: the right action is the criterion, as in ACT's "w/o simulation" ablation, where a
   right-action clarifying question replaces the winner on the strength of its action alone (its quality only
   shows in the trajectory IRPO does not simulate). H against the gold *question* is no criterion: execution
   match (AmbigSQL) scores every question 0, and F1 / similarity to one phrasing rewards copying it;
3. **pair** — per prompt, a correct response wins over an incorrect one (:func:`pair_candidates`); prompts
   with only correct or only incorrect responses (or only empty ones) give no pair and are counted.

Turn level, not trajectories: IRPO samples one (reasoning + answer) response per problem and labels it by
its final answer; the ACT paper contrasts it with ACT precisely as on-policy DPO *without* multi-turn
simulation (ACT §5, "Is trajectory simulation necessary?"), so here the policy's immediate reply to each
decision point is sampled and judged against that turn's gold reply (a clarifying question for a clarify
example, the answer otherwise) — the same turn-level H as ACT's "Turn F1" column.

Which pair: the winner and loser are drawn uniformly (``random.Random(f"irpo/{seed}/{iteration}/{id}")``,
stable whatever the order of the split) among the distinct correct and distinct incorrect texts, as Pang et
al. draw random (correct, incorrect) pairs; ``pairs_per_prompt`` > 1 draws that many distinct pairs.
Empty responses are dropped before labelling (counted): an empty continuation trains nothing useful.

``gold_fallback`` (off by default; a deviation for weak policies): a prompt whose samples are all incorrect gets
the gold response as its winner instead of no pair (counted as ``gold_winners``). With a small model on a hard
task almost no sample is correct, and strict IRPO would have nothing to train on.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clarifylab.backends.base import ChatBackend, SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Action, Example
from clarifylab.metrics.task_heuristics import score_turns
from clarifylab.training.preference_data import PreferencePair

COUNT_KEYS = ("prompts", "samples", "empty_samples", "correct_samples", "pairs", "paired_prompts",
              "skipped_all_correct", "skipped_all_incorrect", "skipped_no_samples", "gold_winners")


@dataclass(frozen=True)
class ScoredSample:
    """One sampled response of M_t to an example and its heuristic score.

    Attributes:
        example_id: the :class:`Example` it answers.
        index: position among that example's N samples (0..N-1).
        text: the response.
        score: the turn-level label score (:func:`label_candidates`): 0 for a wrong action, 1 for a right-action
            clarifying question, H(text, gold answer) for a right-action answer (embedding similarity: [-1, 1]).
    """

    example_id: str
    index: int
    text: str
    score: float


def sample_candidates(examples: Sequence[Example], backend: ChatBackend, n: int, params: SamplingParams,
                      instruction: str | None = None) -> list[list[str]]:
    """N responses per example from ``backend`` in one batched call.

    Args:
        examples: the decision points (their prompt = system message + history, :func:`prompt_messages`).
        backend: the current policy M_t.
        n: samples per example (N >= 1).
        params: decoding; IRPO needs ``temperature > 0`` (else the N samples coincide) and a ``seed`` for
            reproducible pairs.
        instruction: the policy's system-instruction override (``dataset.instruction``).

    Returns:
        ``samples[i][j]`` = the j-th response to ``examples[i]`` (``len(examples)`` lists of ``n`` strings).
    """
    if n < 1:
        raise ValueError(f"sample_candidates: n (samples per prompt) must be >= 1, got {n}")
    if params.greedy and n > 1:
        raise ValueError("sample_candidates: temperature 0 (greedy) gives N identical samples; IRPO needs "
                         "trainer.temperature > 0")
    batch = [prompt_messages(example, instruction) for example in examples for _ in range(n)]
    replies = backend.complete(batch, params) if batch else []
    if len(replies) != len(batch):
        raise RuntimeError(f"backend {getattr(backend, 'model_id', backend)!r} returned {len(replies)} replies for "
                           f"{len(batch)} prompts")
    return [list(replies[i * n:(i + 1) * n]) for i in range(len(examples))]


def label_candidates(examples: Sequence[Example], samples: Sequence[Sequence[str]], heuristic: Any,
                     classifier: Any) -> list[list[ScoredSample]]:
    """Turn-level score of every non-empty sample (module docstring, step 2): 0 when ``A(y)`` is not the gold
    action, else 1 on a clarify turn and ``H(y, r)`` on an answer turn (one ``classify`` and one ``score`` call).

    Args:
        examples: the decision points, all of one task.
        samples: ``samples[i]`` = the responses to ``examples[i]``.
        heuristic: a :class:`~clarifylab.metrics.task_heuristics.TaskHeuristic` for that task.
        classifier: the action classifier A (``classify(responses, examples) -> actions``).

    Returns:
        per example, its non-empty samples as :class:`ScoredSample` (empty ones are left out).
    """
    if len(examples) != len(samples):
        raise ValueError(f"label_candidates: {len(examples)} examples but {len(samples)} sample lists")
    flat = [(example, index, text) for example, texts in zip(examples, samples)
            for index, text in enumerate(texts) if text.strip()]
    tasks = sorted({example.task for example in examples})
    if len(tasks) > 1:
        raise ValueError(f"label_candidates: examples of several tasks {tasks}; label one task at a time")
    actions = [Action(a) for a in classifier.classify([text for _, _, text in flat],
                                                      [example for example, _, _ in flat])] if flat else []
    answers = [k for k, ((example, _, _), action) in enumerate(zip(flat, actions))
               if action is example.action is Action.ANSWER]
    scores = [1.0 if action is example.action else 0.0 for (example, _, _), action in zip(flat, actions)]
    values = score_turns(tasks[0], [flat[k][2] for k in answers], [flat[k][0] for k in answers],
                         heuristic=heuristic) if answers else []
    for k, value in zip(answers, values):
        scores[k] = float(value)
    scored: dict[str, list[ScoredSample]] = {example.id: [] for example in examples}
    for (example, index, text), score in zip(flat, scores):
        scored[example.id].append(ScoredSample(example.id, index, text, float(score)))
    return [scored[example.id] for example in examples]


def _distinct(samples: Sequence[ScoredSample]) -> list[ScoredSample]:
    """First occurrence of each text, in sample order."""
    seen: set[str] = set()
    out = []
    for sample in samples:
        if sample.text not in seen:
            seen.add(sample.text)
            out.append(sample)
    return out


def pair_candidates(examples: Sequence[Example], scored: Sequence[Sequence[ScoredSample]], *, threshold: float,
                    seed: int, iteration: int, pairs_per_prompt: int = 1, instruction: str | None = None,
                    gold_fallback: bool = False) -> tuple[list[PreferencePair], dict[str, int]]:
    """IRPO pairs: per example, correct (score >= ``threshold``) beats incorrect (see the module docstring).

    Args:
        examples: the decision points.
        scored: ``scored[i]`` = the labelled samples of ``examples[i]`` (:func:`label_candidates`).
        threshold: H at or above which a response is correct.
        seed: run seed; with ``iteration`` and the example id it seeds the draw of the pair(s).
        iteration: t, recorded in each pair's id and ``meta``.
        pairs_per_prompt: distinct (correct, incorrect) pairs drawn per example (at most #correct × #incorrect).
        instruction: the system-instruction override used in the pairs' prompts.
        gold_fallback: when no sample is correct, the gold response (score 1, index -1) is the one correct text.

    Returns:
        ``(pairs, counts)``; pair ids are ``"<example id>/irpo<t>/<k>"``. ``counts`` has :data:`COUNT_KEYS`
        (``samples`` and ``correct_samples`` count what ``scored`` holds; ``empty_samples`` is 0 here:
        :func:`build_irpo_pairs` fills it with the empty samples :func:`label_candidates` dropped).
    """
    if pairs_per_prompt < 1:
        raise ValueError(f"pair_candidates: pairs_per_prompt must be >= 1, got {pairs_per_prompt}")
    if len(examples) != len(scored):
        raise ValueError(f"pair_candidates: {len(examples)} examples but {len(scored)} scored lists")
    counts = dict.fromkeys(COUNT_KEYS, 0)
    pairs: list[PreferencePair] = []
    for example, samples in zip(examples, scored):
        counts["prompts"] += 1
        counts["samples"] += len(samples)
        correct = _distinct([s for s in samples if s.score >= threshold])
        incorrect = _distinct([s for s in samples if s.score < threshold])
        counts["correct_samples"] += sum(s.score >= threshold for s in samples)
        if not samples:
            counts["skipped_no_samples"] += 1
            continue
        if not incorrect:
            counts["skipped_all_correct"] += 1
            continue
        if not correct and gold_fallback:
            correct = [ScoredSample(example_id=example.id, index=-1, text=example.response, score=1.0)]
            counts["gold_winners"] += 1
        if not correct:
            counts["skipped_all_incorrect"] += 1
            continue
        rng = random.Random(f"irpo/{seed}/{iteration}/{example.id}")
        combos = list(itertools.product(correct, incorrect))
        chosen = rng.sample(combos, min(pairs_per_prompt, len(combos)))
        counts["paired_prompts"] += 1
        prompt = prompt_messages(example, instruction)
        for k, (winner, loser) in enumerate(chosen):
            pairs.append(PreferencePair(
                id=f"{example.id}/irpo{iteration}/{k}", prompt=prompt,
                chosen=[{"role": "assistant", "content": winner.text}],
                rejected=[{"role": "assistant", "content": loser.text}],
                meta={"example_id": example.id, "task": example.task, "dataset_action": example.action.value,
                      "goal": list(example.goal), "instruction": instruction, "iteration": iteration,
                      "chosen_score": winner.score, "rejected_score": loser.score,
                      "chosen_index": winner.index, "rejected_index": loser.index}))
    counts["pairs"] = len(pairs)
    return pairs, counts


def build_irpo_pairs(examples: Sequence[Example], backend: ChatBackend, heuristic: Any, classifier: Any, *, n: int,
                     params: SamplingParams, threshold: float, seed: int, iteration: int, pairs_per_prompt: int = 1,
                     instruction: str | None = None, gold_fallback: bool = False
                     ) -> tuple[list[PreferencePair], dict[str, int]]:
    """Sample, label and pair (steps 1-3 of the module docstring) for one IRPO iteration.

    Returns:
        ``(pairs, counts)`` as :func:`pair_candidates`, with ``samples`` = every sample drawn
        (``len(examples) * n``) and ``empty_samples`` = those dropped as empty.
    """
    samples = sample_candidates(examples, backend, n, params, instruction)
    scored = label_candidates(examples, samples, heuristic, classifier)
    pairs, counts = pair_candidates(examples, scored, threshold=threshold, seed=seed, iteration=iteration,
                                    pairs_per_prompt=pairs_per_prompt, instruction=instruction,
                                    gold_fallback=gold_fallback)
    total = sum(len(texts) for texts in samples)
    counts["empty_samples"] = total - counts["samples"]
    counts["samples"] = total
    return pairs, counts
