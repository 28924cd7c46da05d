"""Build data: python generate.py task=synthetic_tables [task.seed=1 ...]

``task`` names a config whose ``_target_`` is the builder; its return value (counts) is printed.
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


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
@entry_point
def main(cfg: DictConfig) -> None:
    check_inputs(cfg)
    result = hydra.utils.instantiate(cfg.task)
    print(f"generate: task={hydra.core.hydra_config.HydraConfig.get().runtime.choices.task} -> {result}")


if __name__ == "__main__":
    main()
