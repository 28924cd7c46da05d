"""Train a student/policy: python train.py trainer=sft|... student=... dataset=... [key=value ...]

Composes the config, then hands it to the recipe function that ``trainer.recipe`` names. Returns the recipe's
objective (``trainer.objective``) so Hydra sweepers can optimise it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # run this checkout's code (README "Paths")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from clarifylab.config import apply_offline_defaults, entry_point, register_resolvers  # noqa: E402
from clarifylab.preflight import check_inputs  # noqa: E402

register_resolvers()
apply_offline_defaults()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@entry_point
def main(cfg: DictConfig) -> float | None:
    check_inputs(cfg)
    recipe = hydra.utils.get_method(cfg.trainer.recipe)
    metrics = recipe(cfg)
    return metrics.get(cfg.trainer.objective)


if __name__ == "__main__":
    main()
