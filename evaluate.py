"""Multi-turn evaluation of a trained policy, a base model or a prompting baseline (ACT §4.2, App. D-E).

    python evaluate.py [policy_dir=<train run>/policy] [label=sft]            # a trained policy
    python evaluate.py student=smollm2 label=base                             # the base model
    python evaluate.py baseline=cot baseline.conversations=10                 # in-context prompting baseline
    python evaluate.py policy=openai policy.model=<served name> baseline=standard   # any OpenAI-compatible endpoint
    python evaluate.py --multirun baseline=standard,cot,proactive seed=0,1    # then experiments/report.py multirun/...

``protocol`` (conf/protocol/) names the evaluation that runs; the default, ``multiturn``, writes metrics.json,
metrics.csv, results.md and trajectories.jsonl to the run directory (plus a W&B trajectory table with
logger=wandb) and returns the trajectory-level H (``protocol.objective``, for sweepers).
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


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@entry_point
def main(cfg: DictConfig) -> float:
    check_inputs(cfg)
    runner = hydra.utils.get_method(cfg.protocol.runner)
    metrics = runner(cfg)
    return metrics[cfg.protocol.objective]


if __name__ == "__main__":
    main()
