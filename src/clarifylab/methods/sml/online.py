"""``train.py trainer=sml``: online SML (Cook et al., §3) on the shared group-policy-gradient module.

Per optimizer step ``s``: ``trainer.batch_size`` problems (a seeded permutation of the training problems,
walked by step, so a resumed run sees the same ones), each replicated ``trainer.group_size`` times (G = 8 in
the paper); one batched dialogue per copy with the teacher in the loop (:func:`run_dialogues`, up to
``trainer.max_student_turns`` student turns, sampled at ``trainer.temperature``); reward
``discount ** (k - 1)`` when the student is right at turn ``k`` (binary trajectory reward with the per-turn
discount, 0.7), else 0; advantages normalised within each problem's group; the policy-gradient loss on the
student's tokens only (teacher feedback is a user turn: context, never a target); no KL term.

The teacher: ``teacher=none`` uses the policy being trained (the same model, given the solution in its
prompt); any teacher node (``teacher=openai`` for an endpoint, ``teacher=smollm2``) uses that backend.
``trainer.frozen_teacher=true`` keeps the teacher fixed at the starting policy: with ``teacher=none`` (or a teacher
node with ``model: policy``) it is a frozen copy of the policy as loaded (the base model, or ``init_policy``), so
its feedback does not drift with the student's updates (:func:`build_sml_teacher`); a separate teacher node is
fixed either way.
Leaking teacher feedback is replaced by a fixed hint (the group stays whole) and counted in the rollout log.
``trainer.init_policy`` starts from a saved policy (Q-priming + online SML: the Q-priming SFT run's policy).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from clarifylab.backends.base import SamplingParams
from clarifylab.backends.factory import POLICY, build_backend
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.errors import ConfigError
from clarifylab.methods.sml.dialogue import heuristic_scorer, run_dialogues, student_prompt
from clarifylab.methods.sml.problems import SMLProblem, load_problems
from clarifylab.models import save_policy
from clarifylab.models.adapter_stack import is_adapter_stack
from clarifylab.training.dpo_recipe import load_initial_policy
from clarifylab.training.group_pg_module import GroupPolicyGradientModule, ScoredTrajectory, StepDataModule
from clarifylab.training.lightning_setup import (
    build_loggers,
    build_trainer,
    checkpoint_callbacks,
    config_as_dict,
    fit_and_select,
    policy_source,
    print_run_summary,
    resume_checkpoint_path,
)
from clarifylab.training.policy_gradient import discounted_success_reward
from clarifylab.training.preference_module import frozen_copy

log = logging.getLogger(__name__)


def step_problems(n_problems: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of the problems of optimizer step ``step``: consecutive slices of seeded permutations of
    ``range(n_problems)`` (a new permutation per pass over the problems)."""
    if n_problems < 1:
        raise ConfigError("trainer=sml: no training problems")
    out = []
    for position in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(position, n_problems)
        order = list(range(n_problems))
        random.Random(f"sml-steps/{seed}/{epoch}").shuffle(order)
        out.append(order[offset])
    return out


class SMLRollout:
    """The ``rollout`` hook: step -> scored dialogues (G per problem)."""

    def __init__(self, problems: list[SMLProblem], student: Any, teacher: Any, cfg: Any,
                 teacher_model: Any = None) -> None:
        self.problems, self.student, self.teacher = problems, student, teacher
        self.teacher_model = teacher_model  # a frozen copy behind ``teacher``: moved to the policy's device
        t = cfg.trainer
        self.t, self.seed, self.instruction = t, int(cfg.seed), cfg.dataset.instruction
        self.scorer = heuristic_scorer(cfg.paths, t.threshold)

    def __call__(self, step: int) -> list[ScoredTrajectory]:
        t = self.t
        policy = getattr(self.student, "model", None)
        if self.teacher_model is not None and policy is not None:  # Lightning moved the policy, not the copy
            self.teacher_model.to(next(policy.parameters()).device)
        chosen = step_problems(len(self.problems), t.batch_size, step, self.seed)
        problems = [self.problems[i] for i in chosen for _ in range(t.group_size)]
        groups = [g for g in range(len(chosen)) for _ in range(t.group_size)]
        params = SamplingParams(max_new_tokens=t.max_new_tokens, temperature=t.temperature, top_p=t.top_p,
                                seed=self.seed * 100_003 + step)
        dialogues = run_dialogues(self.student, self.teacher, problems, self.scorer,
                                  max_student_turns=t.max_student_turns, student_params=params,
                                  teacher_params=SamplingParams(max_new_tokens=t.teacher_max_new_tokens),
                                  instruction=self.instruction, leak_policy="replace")
        return [ScoredTrajectory(messages=student_prompt(d.problem, d.turns, self.instruction),
                                 reward=discounted_success_reward(d.success_turn, t.discount), group=g,
                                 record={"id": d.problem.id, "success_turn": d.success_turn, "leaks": d.leaks,
                                         "turns": d.turns})
                for d, g in zip(dialogues, groups)]


def build_sml_teacher(teacher_cfg: Any, frozen: bool, model: Any, tokenizer: Any, student: Any, cache_dir: str,
                      batch_size: int) -> tuple[Any, Any]:
    """The teacher backend of online SML and the frozen model behind it (None when there is none).

    ``teacher_cfg.name == "none"`` (or a teacher node with ``model: policy``): the policy itself (``student``, whose
    weights change every step) when ``frozen`` is false; a frozen deep copy of ``model`` taken now, before any
    update (:func:`~clarifylab.training.preference_module.frozen_copy`; twice the policy's weights in memory) when
    true. Any other teacher node is its own backend (fixed weights or an endpoint) either way.
    """
    uses_policy = teacher_cfg.name == "none" or (teacher_cfg.kind == "transformers" and teacher_cfg.model == POLICY)
    frozen_model = frozen_copy(model) if frozen and uses_policy else None
    own = student if frozen_model is None else TransformersBackend(frozen_model, tokenizer, batch_size=batch_size,
                                                                   model_id="sml-teacher-frozen")
    if teacher_cfg.name == "none":
        return own, frozen_model
    return build_backend(teacher_cfg, cache_dir, policy=own), frozen_model


def run_sml(cfg: Any) -> dict[str, float]:
    """Online SML training (module docstring); returns ``train/reward`` (last step), ``train/steps`` ..."""
    t = cfg.trainer
    if t.max_steps is None or t.max_steps < 1:
        raise ConfigError(f"trainer=sml needs trainer.max_steps >= 1 (optimizer steps), got {t.max_steps}")
    if t.group_size < 2:
        raise ConfigError(f"trainer.group_size={t.group_size}: group-relative advantages need >= 2 samples")
    output_dir = Path(cfg.output_dir)
    resume = resume_checkpoint_path(cfg)
    policy_from = policy_source(t)
    pl.seed_everything(cfg.seed, workers=True)
    problems = load_problems(cfg.dataset, cfg.dataset.train_split, cfg.paths, int(cfg.seed),
                             max_examples=cfg.dataset.max_train_examples)
    model, tokenizer, spec, from_init = load_initial_policy(cfg)
    student = TransformersBackend(model, tokenizer, batch_size=t.rollout_batch_size, model_id="sml-policy")
    teacher, teacher_model = build_sml_teacher(cfg.teacher, t.frozen_teacher, model, tokenizer, student,
                                               cfg.paths.cache_dir, t.rollout_batch_size)
    module = GroupPolicyGradientModule(model, SMLRollout(problems, student, teacher, cfg, teacher_model), tokenizer,
                                       max_length=t.max_length, lr=t.lr, weight_decay=t.weight_decay,
                                       warmup_ratio=t.warmup_ratio, lr_schedule=t.lr_schedule,
                                       end_of_turn=t.end_of_turn, log_path=output_dir / "rollouts.jsonl",
                                       forward_batch_size=t.eval_batch_size, recompute_chunks=t.recompute_chunks)
    checkpoint_dir = output_dir / "checkpoints"
    callbacks = checkpoint_callbacks(checkpoint_dir, t.checkpoint_every_n_steps, monitor=None)
    loggers = build_loggers(cfg.logger)
    for logger in loggers:
        logger.log_hyperparams(config_as_dict(cfg))
    trainer = build_trainer(cfg, callbacks, loggers, has_validation=False)
    outcome = fit_and_select(trainer, module, StepDataModule(t.max_steps), callbacks, resume=resume,
                             has_validation=False, monitor="train/reward", mode="max", policy_from=policy_from)
    policy_dir = output_dir / "policy"
    if trainer.is_global_zero:
        policy = module.model
        if from_init and hasattr(policy, "merge_and_unload") and not is_adapter_stack(policy):
            policy = policy.merge_and_unload()
        save_policy(policy, tokenizer, spec, policy_dir)
    result = {"train/reward": outcome.last_value("train/reward"), "train/success": outcome.last_value("train/success"),
              "train/loss": outcome.train_loss, "train/steps": float(trainer.global_step),
              "train/tokens_seen": float(module.tokens_seen)}
    if trainer.is_global_zero:
        print_run_summary("sml", {"policy": policy_dir, "rollouts": output_dir / "rollouts.jsonl",
                                  "checkpoints": checkpoint_dir}, loggers, result)
    return result
