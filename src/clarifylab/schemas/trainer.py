"""``trainer`` group schemas (``conf/trainer/*.yaml``), one dataclass per trainer; shared fields are inherited.

``TrainerSchema`` (every Lightning recipe) -> ``SFTSchema`` (trainer=sft) and ``DPOSchema`` (trainer=dpo) ->
``OnPolicySchema`` (sampling from the policy) -> ``IRPOSchema`` (trainer=irpo) and ``ACTSchema`` (trainer=act).
The values (and their comments) are in the YAML; these classes hold names and types only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from clarifylab.schemas.fields import backend_node, one_of, required

TRUNCATION = ("drop", "error")
PROGRESS_BARS = ("rich", "tqdm", "none")
POLICY_FROM = ("best", "last")
LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class TrainerSchema:
    """Loop, optimisation and checkpoint options every training recipe reads (``training/lightning_setup.py``)."""

    name: str = required()
    recipe: str = required()
    objective: str = required()
    lr: float = required()
    weight_decay: float = required()
    warmup_ratio: float = required()
    lr_schedule: str = one_of(*LR_SCHEDULES)
    max_epochs: Optional[int] = required()
    max_steps: Optional[int] = required()
    batch_size: int = required()
    eval_batch_size: int = required()
    accumulate_grad_batches: int = required()
    gradient_clip_val: Optional[float] = required()
    max_length: int = required()
    truncation: str = one_of(*TRUNCATION)
    val_check_interval: Any = required()        # float: fraction of an epoch | int: batches
    limit_val_batches: Any = required()         # float: fraction | int: batches
    checkpoint_every_n_steps: Optional[int] = required()
    log_every_n_steps: int = required()
    num_workers: int = required()
    num_sanity_val_steps: int = required()
    policy_from: str = one_of(*POLICY_FROM)
    end_of_turn: Optional[str] = required()
    progress_bar: str = one_of(*PROGRESS_BARS)
    model_summary: bool = required()


@dataclass
class SFTSchema(TrainerSchema):
    """trainer=sft: supervised fine-tuning on gold conversations."""

    loss_on: str = one_of("all_assistant", "last_assistant")
    sample_generations: int = required()
    sample_max_new_tokens: int = required()


@dataclass
class DPOSchema(TrainerSchema):
    """trainer=dpo: preference training on fixed pairs (the base of irpo and act)."""

    pairs_path: Optional[str] = required()
    val_pairs_path: Optional[str] = required()
    max_train_pairs: Optional[int] = required()
    init_policy: Optional[str] = required()
    beta: float = required()
    loss_type: str = one_of("sigmoid", "ipo", "hinge")
    label_smoothing: float = required()
    alpha: float = required()
    reference: str = one_of("auto", "adapter", "copy")
    precompute_reference: bool = required()
    forward: str = one_of("auto", "packed", "prefix_cache", "concatenated")


@dataclass
class OnPolicySchema(DPOSchema):
    """Preference training that samples from the policy and scores samples with the task heuristic H."""

    temperature: float = required()
    top_p: float = required()
    max_new_tokens: int = required()
    threshold: Optional[float] = required()   # null = the task's success threshold


@dataclass
class IRPOSchema(OnPolicySchema):
    """trainer=irpo: iterations of sample -> label -> pair -> DPO + NLL."""

    iterations: int = required()
    num_samples: int = required()
    pairs_per_prompt: int = required()
    gold_fallback: bool = required()
    sample_batch_size: int = required()


@dataclass
class ACTSchema(OnPolicySchema):
    """trainer=act: DPO with ACT's on-policy replacement (Alg. 2)."""

    sample_every: int = required()
    sample_prob: float = required()
    max_turns: int = required()
    log_samples: bool = required()


@dataclass
class StarGateSchema(SFTSchema):
    """trainer=star-gate: iterations of simulate -> score under m0 -> select -> SFT from m0 (methods/star_gate)."""

    iterations: int = required()
    splits: list[str] = required()
    num_conversations: int = required()
    max_turns: int = required()
    top_k: int = required()
    temperature: float = required()
    top_p: float = required()
    max_new_tokens: int = required()
    regularization: str = one_of("self", "oracle", "none")
    answer_max_new_tokens: int = required()
    sample_batch_size: int = required()
    score_batch_size: int = required()
    score_max_length: Optional[int] = required()
    roleplayer: Any = backend_node()
    roleplayer_max_new_tokens: int = required()
    table_rows: int = required()


@dataclass
class SMLSchema(TrainerSchema):
    """trainer=sml: online social meta-learning (group-relative policy gradient on teacher dialogues)."""

    init_policy: Optional[str] = required()
    group_size: int = required()
    discount: float = required()
    max_student_turns: int = required()
    temperature: float = required()
    top_p: float = required()
    max_new_tokens: int = required()
    teacher_max_new_tokens: int = required()
    threshold: Optional[float] = required()
    rollout_batch_size: int = required()
    frozen_teacher: bool = required()
    recompute_chunks: bool = required()


TRAINERS: dict[str, type] = {"sft": SFTSchema, "dpo": DPOSchema, "irpo": IRPOSchema, "act": ACTSchema,
                             "star_gate": StarGateSchema,
                             "sml": SMLSchema}
