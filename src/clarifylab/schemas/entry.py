"""Top-level keys of each entry config (``conf/train.yaml``, ``evaluate.yaml``, ``generate.yaml``, ``agreement.yaml``).

The group nodes (``trainer``, ``dataset``, ...) have their own schemas; these dataclasses hold the plain keys
beside them (``seed``, ``resume``, ``policy_dir``, ...), so ``python evaluate.py +polcy_dir=x`` fails in one line
naming ``polcy_dir`` and the valid keys. Values live in the entry YAML; :func:`experiment_key` marks a key that
only some experiments set (``conf/experiment/*.yaml``: ``sft_policy``, ``act_pairs_dir``, ...): allowed, typed,
and absent from the other runs (its ``None`` is "not set", never a value the code reads in its place).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from clarifylab.schemas.fields import one_of, required


def experiment_key() -> Any:
    """A top-level key that only the experiments which use it set (not required)."""
    return field(default=None, metadata={"experiment": True})


@dataclass
class GenerationSchema:
    """``generation:`` of evaluate.yaml (the evaluated policy's decoding)."""

    max_new_tokens: int = required()
    batch_size: int = required()
    temperature: float = required()
    top_p: float = required()


@dataclass
class GenerateEntrySchema:
    """generate.yaml."""

    reuse_run_dir: bool = required()


@dataclass
class RunEntrySchema(GenerateEntrySchema):
    """Keys of every entry config that names its runs and seeds them."""

    seed: int = required()
    run_name: str = required()
    output_dir: Optional[str] = required()           # ${hydra:runtime.output_dir}: None outside a Hydra run


@dataclass
class TrainEntrySchema(RunEntrySchema):
    """train.yaml (+ the keys ACT's paper experiments add)."""

    resume: Optional[str] = required()
    sft_policy: Optional[str] = experiment_key()       # act_paper/*_act|irpo|ablation_*: the SFT policy to start from
    act_pairs_dir: Optional[str] = experiment_key()    # act_paper/*_act|ablation_*: the Alg. 1 pairs folder
    pseudo_labels: Optional[bool] = experiment_key()   # act_paper/pacific_act_pseudo: pairs labelled by A
    generation: Optional[Any] = experiment_key()       # demo/smoke: evaluate.py's decoding (a partial node), unused


@dataclass
class EvaluateEntrySchema(RunEntrySchema):
    """evaluate.yaml."""

    policy_dir: Optional[str] = required()
    label: str = required()
    model: Optional[str] = required()
    approach: Optional[str] = required()
    conversations: Optional[int] = required()
    split: str = required()
    max_examples: Optional[int] = required()
    max_turns: int = required()
    interpretations: str = one_of("first", "all", "auto")
    num_logged_trajectories: int = required()
    progress: bool = required()
    generation: GenerationSchema = required()
    trainer: Optional[Any] = experiment_key()          # demo/smoke set it for train.py (one file for both)


@dataclass
class AgreementEntrySchema(RunEntrySchema):
    """agreement.yaml (experiments/classifier_agreement.py)."""

    split: Any = required()                            # a split name, or a list of them
    demonstration_split: Optional[str] = required()
    max_examples: Optional[int] = required()
    balanced: bool = required()
    batch_size: int = required()
    max_disagreements: int = required()
    progress: bool = required()


ENTRY_CONFIGS: dict[str, type] = {
    "train": TrainEntrySchema,
    "evaluate": EvaluateEntrySchema,
    "generate": GenerateEntrySchema,
    "agreement": AgreementEntrySchema,
}
"""Entry config name (Hydra's ``job.config_name``) -> the schema of its top-level keys."""
