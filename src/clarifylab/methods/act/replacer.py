"""ACT Alg. 2 lines 2-16: on-policy replacement of a batch's winning / losing responses.

Per training batch (when this batch is sampled, see :class:`ACTReplacer`), for every pair ``(p, y_w, y_l)``
with gold (or pseudo-labelled, or random-ablation) action ``a = meta["action"]``:

1. sample ``y ~ pi_theta(. | p)`` from the CURRENT policy (one batched generate call);
2. ``A(y) != a`` -> ``y_l := [y]``                                              (branch ``wrong_action``)
3. else simulate the trajectory from ``y`` with U and pi_theta (``env.rollout``, ``first_responses=y``) and
   score its outcome g' against the goal with the task heuristic H:
   ``H >= threshold`` -> ``y_w := trajectory``                                   (branch ``good_trajectory``)
   otherwise          -> ``y_l := trajectory``                                   (branch ``bad_trajectory``)
   The trajectory is ``y`` followed by the simulated (user, assistant) turns; one that still ends in a
   clarifying question at ``max_turns`` has no outcome and scores 0.

``simulation=False`` (ACT Table 5 "w/ sampling but w/o simulation", an on-policy DPO with an action- and
task-aware reward, §5.5): step 2 as above; for a right action no trajectory is simulated: a right-action
*answer* ``y`` is scored by H directly (``H >= threshold`` -> ``y_w := [y]`` (``good_answer``), else
``y_l := [y]`` (``bad_answer``)); a right-action *clarifying question* cannot be scored without the user's
reply and replaces the winner on the strength of its action alone (``right_clarify``).

Replaced pairs are re-tokenized and the whole batch re-collated, so the module scores the new sides with
policy and reference in the same step (a fresh batch carries no reference log-probs). A replaced pair
whose side no longer fits ``max_length`` keeps its old sides (counted as ``too_long``).

Distributed data parallel: each rank samples its own shard with the seed ``seed + 1_000_003 * call +
rank`` and pads its rollout with dummy one-token generate calls so that every rank makes exactly
``1 + (max_turns - 1)`` generate calls per sampled batch (sharded / ZeRO-3 models need every rank to
enter ``generate`` together); whether a batch is sampled depends only on the call index, never on the rank.

Resume: the call counter fixes the sampling schedule and every seed, so :meth:`ACTReplacer.state_dict` (counter
and branch totals) travels in the Lightning checkpoint (``PreferenceModule.on_save_checkpoint``); a resumed run
samples exactly as the uninterrupted one and drops the sample-log lines written after its checkpoint.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarifylab.backends.base import ChatBackend, Message, SamplingParams
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.data.schema import Action, Example
from clarifylab.env.action_classifier import ActionClassifier
from clarifylab.env.rollout import Trajectory, rollout
from clarifylab.env.user_simulator import UserSimulator
from clarifylab.errors import ConfigError, DataFormatError
from clarifylab.io import write_text
from clarifylab.training.preference_data import (
    PreferenceBatch,
    PreferenceCollator,
    PreferencePair,
    pad_token_id_of,
    tokenize_pair,
)
from clarifylab.training.task_success import TrajectoryScorer, success_threshold, trajectory_scorer

log = logging.getLogger(__name__)

BRANCHES = ("not_sampled", "wrong_action", "good_trajectory", "bad_trajectory", "right_clarify", "good_answer",
            "bad_answer", "too_long")
Scorer = TrajectoryScorer


@dataclass(frozen=True)
class ACTReplacerConfig:
    """Alg. 2 settings (conf/trainer/act.yaml).

    Attributes:
        sample_every: sample on every n-th training batch (micro-batch; 1 = every batch).
        sample_prob: then sample with this probability (a draw seeded by ``seed`` and the batch index,
            identical on every rank).
        threshold: the heuristic tolerance: ``H >= threshold`` rewards the trajectory; ``None`` (default) = each
            example's task threshold (:data:`~clarifylab.training.task_success.SUCCESS_THRESHOLDS`, e.g. DROP F1
            >= 0.9 as the official code).
        max_turns: assistant turns per simulated trajectory, ``y`` included.
        max_new_tokens, temperature, top_p: the policy's decoding while sampling and simulating.
        seed: base seed of the sampler.
        simulation: False = the "w/o simulation" ablation (module docstring).
        max_length, truncation, end_of_turn: re-tokenization (as the datamodule's).
    """

    sample_every: int = 1
    sample_prob: float = 1.0
    threshold: float | None = None
    max_turns: int = 3
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    simulation: bool = True
    max_length: int = 512
    truncation: str = "drop"
    end_of_turn: str | None = None

    def __post_init__(self) -> None:
        if self.sample_every < 1:
            raise ConfigError(f"trainer.sample_every must be >= 1, got {self.sample_every}")
        if not 0.0 <= self.sample_prob <= 1.0:
            raise ConfigError(f"trainer.sample_prob must be in [0, 1], got {self.sample_prob}")
        if self.max_turns < 1:
            raise ConfigError(f"trainer.max_turns must be >= 1, got {self.max_turns}")


def example_of(pair: PreferencePair, examples: Mapping[str, Example] | None = None) -> Example:
    """The Example a pair was built from: ``meta["example"]`` (ACT Alg. 1 pairs), else ``examples[meta.example_id]``."""
    record = pair.meta.get("example")
    if record is not None:
        return Example.from_dict(record)
    key = pair.meta.get("example_id", pair.id)
    if examples is not None and key in examples:
        return examples[key]
    raise DataFormatError(f"pair {pair.id!r} has no meta.example and example {key!r} is not in the dataset's "
                          "training split: ACT needs the decision point to simulate trajectories; build the pairs "
                          "with `python generate.py task=act_pairs`")


def _call_of(line: str) -> int | None:
    """The ``call`` of a sample-log line; ``None`` for a blank line or one cut short by a preemption."""
    try:
        return int(json.loads(line)["call"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class _CountingBackend:
    """Forwards to ``inner`` and counts ``complete`` calls (to pad ranks to the same number of calls)."""

    def __init__(self, inner: ChatBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.calls = 0

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        self.calls += 1
        return self.inner.complete(batch, params)


def _transformers_policy(module: Any, tokenizer: Any, batch_size: int) -> ChatBackend:
    return TransformersBackend(module.model, tokenizer, batch_size=max(batch_size, 1), model_id="act-policy")


class ACTReplacer:
    """The :class:`~clarifylab.training.preference_module.PairReplacer` of ACT (module docstring).

    Args:
        tokenizer: the policy's tokenizer (re-tokenization; the default policy backend).
        classifier: A.
        simulator: U.
        config: :class:`ACTReplacerConfig`.
        scorer: H over trajectories; default :func:`~clarifylab.training.task_success.trajectory_scorer` without
            paths (enough for tasks whose H needs no file; ``run_act`` passes the config's, which AmbigSQL needs).
        examples: id -> Example for pairs without ``meta.example``.
        policy_factory: ``(module, batch_size) -> ChatBackend`` over the current policy (default: a
            :class:`TransformersBackend` on ``module.model`` generating the whole shard in one call).
        samples_dir: when given, every sampled batch appends one JSON line per pair to
            ``<samples_dir>/rank<r>.jsonl`` (``call, rank, pair_id, sample, sample_action, gold_action, branch,
            score``): what the policy wrote on-policy and what Alg. 2 did with it, per rank.

    Attributes:
        totals: cumulative count per branch (:data:`BRANCHES`) over the run.
        last: the counts of the latest call.
    """

    def __init__(self, tokenizer: Any, classifier: ActionClassifier, simulator: UserSimulator,
                 config: ACTReplacerConfig, scorer: Scorer | None = None,
                 examples: Mapping[str, Example] | None = None,
                 policy_factory: Callable[[Any, int], ChatBackend] | None = None,
                 samples_dir: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.classifier = classifier
        self.simulator = simulator
        self.config = config
        self.scorer = scorer or trajectory_scorer(None)
        self.examples = examples
        self.policy_factory = policy_factory or (lambda module, size: _transformers_policy(module, tokenizer, size))
        self.collator = PreferenceCollator(pad_token_id_of(tokenizer)) if tokenizer is not None else None
        self.samples_dir = samples_dir
        self.calls = 0
        self.totals: Counter[str] = Counter({branch: 0 for branch in BRANCHES})
        self.last: dict[str, int] = {}
        self._trim_samples_log = False

    # ---- checkpointed state (PreferenceModule.on_save_checkpoint / on_load_checkpoint) ----

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue exactly: the call counter (it fixes the sampling schedule and
        every sampling seed, :meth:`should_sample` / :meth:`params`), the branch totals and the last counts."""
        return {"calls": self.calls, "totals": dict(self.totals), "last": dict(self.last)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. The sample log is trimmed (at the next call, when the rank is known) to
        the calls before ``state["calls"]``: lines a preempted run wrote after its checkpoint are dropped, so the
        resumed log equals an uninterrupted run's."""
        self.calls = int(state["calls"])
        self.totals = Counter({branch: 0 for branch in BRANCHES})
        self.totals.update({str(k): int(v) for k, v in state["totals"].items()})
        self.last = {str(k): int(v) for k, v in state["last"].items()}
        self._trim_samples_log = True

    # ---- schedule and seeds ----

    def should_sample(self, call: int) -> bool:
        """Whether batch ``call`` (0-based) is sampled: every ``sample_every``-th, then with ``sample_prob``
        (seeded by ``(seed, call)``: the same answer on every rank)."""
        c = self.config
        if call % c.sample_every:
            return False
        return c.sample_prob >= 1.0 or random.Random(f"act/{c.seed}/{call}").random() < c.sample_prob

    def params(self, call: int, rank: int) -> SamplingParams:
        """The policy's decoding for batch ``call`` on ``rank`` (a rank-dependent seed)."""
        c = self.config
        return SamplingParams(max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p,
                              seed=c.seed + 1_000_003 * call + rank)

    def threshold(self, example: Example) -> float:
        """H at or above which a sample of ``example`` succeeds (``config.threshold`` or its task's)."""
        return success_threshold(example.task, self.config.threshold)

    # ---- the replacement ----

    def replace(self, pairs: Sequence[PreferencePair], policy: ChatBackend,
                params: SamplingParams) -> tuple[list[PreferencePair], list[str], list[float | None]]:
        """Alg. 2 lines 2-16 on a list of pairs with a given policy backend.

        Returns:
            ``(new_pairs, branches, scores)``: per pair, the pair with its replaced side (``meta.act_branch``
            set), the branch taken and H (``None`` where not scored).
        """
        c = self.config
        examples = [example_of(pair, self.examples) for pair in pairs]
        gold = []
        for pair in pairs:
            if pair.gold_action is None:
                raise DataFormatError(f"pair {pair.id!r} has no meta.action: ACT compares A(y) with it; build the "
                                      "pairs with `python generate.py task=act_pairs`")
            gold.append(pair.gold_action)
        samples = policy.complete([pair.prompt for pair in pairs], params)
        actions = [Action(a) for a in self.classifier.classify(samples, examples)]
        branches: list[str] = [""] * len(pairs)
        scores: list[float | None] = [None] * len(pairs)
        continuations: list[list[Message]] = [[{"role": "assistant", "content": y}] for y in samples]
        right = [i for i in range(len(pairs)) if actions[i] is gold[i]]
        for i in range(len(pairs)):
            if actions[i] is not gold[i]:
                branches[i] = "wrong_action"
        if c.simulation and right:
            # one batched rollout for every right-action sample (each pair keeps its own instruction), so a
            # sampled batch costs 1 + (max_turns - 1) policy calls at most
            trajectories = list(zip(right, rollout(
                policy, [examples[i] for i in right], self.classifier, self.simulator, max_turns=c.max_turns,
                params=params, instruction=[pairs[i].meta.get("instruction") for i in right],
                interpretations="first", first_responses=[samples[i] for i in right],
                first_actions=[actions[i] for i in right])))
            values = self.scorer([t for _, t in trajectories])
            for (i, trajectory), value in zip(trajectories, values):
                continuations[i] = [dict(m) for m in trajectory.turns]
                scores[i] = value
                branches[i] = "good_trajectory" if value >= self.threshold(examples[i]) else "bad_trajectory"
        elif right:
            answers = [i for i in right if actions[i] is Action.ANSWER]
            for i in right:
                if actions[i] is Action.CLARIFY:
                    branches[i] = "right_clarify"
            if answers:
                values = self.scorer([Trajectory(example=examples[i], interpretation=0, first_response=samples[i],
                                                 first_action=actions[i], turns=continuations[i], actions=[actions[i]],
                                                 outcome=samples[i], n_clarifications=0, hit_turn_limit=False)
                                      for i in answers])
                for i, value in zip(answers, values):
                    scores[i] = value
                    branches[i] = "good_answer" if value >= self.threshold(examples[i]) else "bad_answer"
        new_pairs = []
        for pair, branch, continuation, score, sample, action in zip(pairs, branches, continuations, scores, samples,
                                                                     actions):
            meta = {"act_branch": branch, "act_score": score, "act_sample": sample, "act_sample_action": action.value}
            if branch in ("good_trajectory", "right_clarify", "good_answer"):
                new_pairs.append(pair.with_sides(chosen=continuation, **meta))
            else:
                new_pairs.append(pair.with_sides(rejected=continuation, **meta))
        return new_pairs, branches, scores

    def __call__(self, module: Any, batch: PreferenceBatch) -> PreferenceBatch:
        """The module hook: sample (or not) this batch, replace, re-tokenize, log counts."""
        call = self.calls
        self.calls += 1
        trainer = getattr(module, "_trainer", None)
        rank = int(getattr(trainer, "global_rank", 0) or 0) if trainer is not None else 0
        if self._trim_samples_log:
            self._trim_samples(rank, call)
        counts = Counter({branch: 0 for branch in BRANCHES})
        if not self.should_sample(call):
            counts["not_sampled"] = len(batch)
            self._log(module, counts, [], len(batch))
            return batch
        world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
        policy = _CountingBackend(self.policy_factory(module, len(batch)))
        params = self.params(call, rank)
        new_pairs, branches, scores = self.replace(batch.pairs, policy, params)
        if world > 1:  # every rank: exactly 1 + (max_turns - 1) generate calls
            filler = SamplingParams(max_new_tokens=1, temperature=0.0)
            while policy.calls < self.config.max_turns:
                policy.complete([batch.pairs[0].prompt], filler)
        counts.update(branches)
        if self.samples_dir is not None:
            self._write_samples(call, rank, new_pairs)
        items = []
        for old, new in zip(batch.pairs, new_pairs):
            tokenized = tokenize_pair(new, self.tokenizer, self.config.max_length, self.config.truncation,
                                      self.config.end_of_turn)
            if tokenized is None:
                counts["too_long"] += 1
                tokenized = tokenize_pair(old, self.tokenizer, self.config.max_length, "error",
                                          self.config.end_of_turn)
            items.append(tokenized)
        self._log(module, counts, [s for s in scores if s is not None], len(batch))
        return self.collator(items)

    def _samples_path(self, rank: int) -> Path:
        return Path(str(self.samples_dir)) / f"rank{rank}.jsonl"

    def _trim_samples(self, rank: int, calls: int) -> None:
        """Keep only the sample-log lines of calls before ``calls`` (rewritten atomically)."""
        self._trim_samples_log = False
        if self.samples_dir is None or not self._samples_path(rank).is_file():
            return
        path = self._samples_path(rank)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _call_of(line) is not None and _call_of(line) < calls]
        if len(kept) != len(lines):
            log.info("ACT resume: dropped %d sample-log lines written after the checkpoint (call >= %d) from %s",
                     len(lines) - len(kept), calls, path)
            write_text(path, "".join(kept))

    def _write_samples(self, call: int, rank: int, pairs: Sequence[PreferencePair]) -> None:
        path = self._samples_path(rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for pair in pairs:
                m = pair.meta
                handle.write(json.dumps({"call": call, "rank": rank, "pair_id": pair.id, "sample": m["act_sample"],
                                         "sample_action": m["act_sample_action"], "gold_action": m.get("action"),
                                         "branch": m["act_branch"], "score": m["act_score"]}) + "\n")

    def _log(self, module: Any, counts: Counter[str], scores: list[float], size: int) -> None:
        self.totals.update(counts)
        self.last = dict(counts)
        log_fn = getattr(module, "log", None)
        if log_fn is None:
            return
        for branch in BRANCHES:
            log_fn(f"act/{branch}", float(counts[branch]), on_step=True, on_epoch=False, batch_size=size)
        if scores:
            log_fn("act/mean_H", sum(scores) / len(scores), on_step=True, on_epoch=False, batch_size=size)
