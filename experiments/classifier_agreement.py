"""Agreement of an action classifier with the gold actions of a dataset (SPEC §4; ACT's classifier A).

    python experiments/classifier_agreement.py dataset=pacific split=all       # heuristic, every gold response
    python experiments/classifier_agreement.py dataset=abg_coqa split=all
    python experiments/classifier_agreement.py dataset=synthetic_tables split=[train,validation,test]
    # SmolLM2 few-shot classifier on a balanced seeded sample of 40 test responses, demonstrations from train:
    python experiments/classifier_agreement.py dataset=pacific classifier=llm_fewshot max_examples=40 balanced=true
    python experiments/classifier_agreement.py --multirun dataset=pacific,abg_coqa,synthetic_tables

Writes agreement.json (metrics, confusion counts, timing, up to max_disagreements disagreements) and
agreement.md to the Hydra run directory, prints a rich table, and returns the macro F1 (for sweepers).
The logic lives in clarifylab.evaluation.classifier_agreement; the config is conf/agreement.yaml.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's code (README "Paths")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from clarifylab.config import apply_offline_defaults, entry_point, register_resolvers  # noqa: E402

register_resolvers()
apply_offline_defaults()


@hydra.main(version_base="1.3", config_path="../conf", config_name="agreement")
@entry_point
def main(cfg: DictConfig) -> float:
    from clarifylab.evaluation.classifier_agreement import run_classifier_agreement

    return run_classifier_agreement(cfg)["macro_f1"]


if __name__ == "__main__":
    main()
