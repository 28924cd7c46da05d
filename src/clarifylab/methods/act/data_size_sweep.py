"""The ACT data-size sweep (ACT Tables 1-3): for each dataset D and number of training conversations N,
Alg. 1 pairs -> SFT -> ACT and IRPO from the SFT policy -> evaluation of each policy -> one report.

:func:`plan` turns the settings into an ordered list of :class:`Step` (one ``train.py`` / ``generate.py`` /
``evaluate.py`` command each, with the file whose existence marks it done); ``experiments/act_data_sweep.py``
runs them, skipping finished steps, so a stopped sweep resumes where it stopped. Every run is a separate
process with its own Hydra output folder under ``root``:

    root/data/ambigsql/             AmbigSQL built from Spider (when ambigsql is in the grid)
    root/pairs/<D>-c<N>/            ACT Alg. 1 pairs (train + validation)
    root/<D>/<trainer>/c<N>/        train.py runs (policy/ inside)
    root/eval/<D>-c<N>-<trainer>/   evaluate.py runs (metrics.json): the folder report.py --layout act reads

Scales: ``paper`` adds nothing (experiment=act_paper/*: Zephyr-7B, GPU); ``cpu`` swaps in the bundled
SmolLM2-135M and caps steps and examples (minutes per run on 2 cores); ``smoke`` uses the tiny random model
(seconds; tests); both let IRPO fall back to the gold reply as the winner where no sample is correct
(``trainer.gold_fallback``: a weak model's samples rarely are). PACIFIC with N=250 needs a larger training pool: every command of that setting gets
``dataset.eval_fraction=0.05 dataset.val_conversations=5`` (conf/dataset/pacific.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clarifylab.errors import ConfigError

DATASETS = ("pacific", "abg_coqa", "ambigsql")
TRAINERS = ("sft", "irpo", "act")
SCALES = ("paper", "cpu", "smoke")


@dataclass(frozen=True)
class Step:
    """One command of the sweep: ``python <argv...>`` from the repository root; done when ``marker`` exists."""

    name: str
    argv: list[str]
    marker: Path
    kind: str = field(default="train")


def run_dir_args(run_dir: Path) -> list[str]:
    """The step's own folder. ``reuse_run_dir=true``: a re-run of a stopped step continues in it (IRPO skips its
    finished iterations; the other steps start over) instead of being refused as a reused run folder."""
    return [f"hydra.run.dir={run_dir}", "reuse_run_dir=true"]


def pool_overrides(dataset: str, conversations: int) -> list[str]:
    """Overrides every command of a (dataset, N) setting needs: PACIFIC's pool is too small for 250 otherwise."""
    if dataset == "pacific" and conversations > 200:
        return ["dataset.eval_fraction=0.05", "dataset.val_conversations=5"]
    return []


def scale_overrides(scale: str, kind: str, steps: int, eval_examples: int) -> list[str]:
    """Model swap and caps for ``kind`` in {pairs, sft, act, irpo, eval} at ``scale``."""
    if scale == "paper":
        return []
    model = ["student=smollm2"] if scale == "cpu" else ["student=tiny"]
    teacher = "smollm2" if scale == "cpu" else "tiny"
    common = model + ["hardware=cpu"]
    if kind == "pairs":
        return [f"teacher@task.teacher={teacher}", f"task.max_examples={4 * steps}", "task.k=2",
                "task.max_new_tokens=32"]
    if kind == "eval":
        return common + [f"dataset.max_eval_examples={eval_examples}", "generation.max_new_tokens=64"]
    train = common + ["logger=csv", "trainer.max_epochs=1", f"trainer.max_steps={steps}", "trainer.batch_size=4",
                      "dataset.max_val_examples=16", "trainer.progress_bar=none"]
    if kind == "sft":
        return train + ["trainer.lr=2e-4", f"dataset.max_train_examples={4 * steps}"]
    if kind == "act":
        return train + ["trainer.lr=5e-5", f"trainer.max_train_pairs={4 * steps}", "trainer.max_new_tokens=32",
                        "trainer.max_turns=2"]
    if kind == "irpo":
        return train + ["trainer.lr=5e-5", "trainer.iterations=1", "trainer.num_samples=4", "trainer.gold_fallback=true",
                        f"dataset.max_train_examples={4 * steps}", "trainer.max_new_tokens=32"]
    raise ValueError(f"unknown step kind {kind!r}")


def plan(root: str | Path, datasets: Sequence[str] = DATASETS, sizes: Sequence[int] = (50, 100, 250),
         trainers: Sequence[str] = TRAINERS, scale: str = "paper", steps: int = 8, eval_examples: int = 40,
         extra: Sequence[str] = ()) -> list[Step]:
    """The ordered steps of the sweep (see the module docstring).

    Args:
        root: output root of the whole sweep.
        datasets, sizes, trainers: the grid (``sft`` is always trained: the others start from it).
        scale: ``paper`` | ``cpu`` | ``smoke``.
        steps: optimizer steps per training run at cpu/smoke scale (batch 4).
        eval_examples: evaluation examples per policy at cpu/smoke scale.
        extra: overrides appended to every train/evaluate command (e.g. ``hydra/launcher=slurm`` needs ``-m``).

    Raises:
        ConfigError: an unknown dataset, trainer or scale.
    """
    for value, known, what in ((datasets, DATASETS, "dataset"), (trainers, TRAINERS, "trainer")):
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ConfigError(f"unknown {what}(s) {unknown}; choose from {list(known)}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose from {list(SCALES)}")
    root = Path(root).resolve()
    out: list[Step] = []
    ambigsql_dir = root / "data" / "ambigsql"
    if "ambigsql" in datasets:  # AmbigSQL is built from Spider first (capped at cpu/smoke scale)
        caps = [] if scale == "paper" else [f"teacher@task.teacher={'smollm2' if scale == 'cpu' else 'tiny'}",
                                            f"task.max_items={max(sizes) * 2}"]
        out.append(Step("build ambigsql", ["generate.py", "task=ambigsql", f"task.out_dir={ambigsql_dir}",
                                           *run_dir_args(ambigsql_dir / "run"), *caps],
                        ambigsql_dir / "manifest.json", "data"))
    for dataset in datasets:
        for n in sizes:
            pool = pool_overrides(dataset, n) + ([f"dataset.dir={ambigsql_dir}"] if dataset == "ambigsql" else [])
            tag = f"{dataset}-c{n}"
            pairs = root / "pairs" / tag
            sft = root / dataset / "sft" / f"c{n}"
            if "act" in trainers:
                out.append(Step(f"pairs {tag}", [
                    "generate.py", "task=act_pairs", f"dataset@task.dataset={dataset}",
                    f"task.dataset.conversations={n}", *[f"task.{o}" for o in pool], f"task.out_dir={pairs}",
                    *run_dir_args(pairs / "run"), *scale_overrides(scale, "pairs", steps, eval_examples)],
                    pairs / "manifest.json", "pairs"))
            runs = {"sft": sft}
            out.append(Step(f"sft {tag}", [
                "train.py", f"experiment=act_paper/{dataset}_sft", f"dataset.conversations={n}", *pool,
                *run_dir_args(sft), *scale_overrides(scale, "sft", steps, eval_examples), *extra],
                sft / "policy" / "clarifylab_policy.json"))
            for trainer in ("irpo", "act"):
                if trainer not in trainers:
                    continue
                run = root / dataset / trainer / f"c{n}"
                runs[trainer] = run
                pairs_args = [f"act_pairs_dir={pairs}"] if trainer == "act" else []
                out.append(Step(f"{trainer} {tag}", [
                    "train.py", f"experiment=act_paper/{dataset}_{trainer}", f"dataset.conversations={n}", *pool,
                    f"sft_policy={sft / 'policy'}", *pairs_args, *run_dir_args(run),
                    *scale_overrides(scale, trainer, steps, eval_examples), *extra],
                    run / "policy" / "clarifylab_policy.json"))
            for trainer, run in runs.items():
                if trainer not in trainers:
                    continue
                eval_dir = root / "eval" / f"{tag}-{trainer}"
                out.append(Step(f"evaluate {tag} {trainer}", [
                    "evaluate.py", f"experiment=act_paper/{dataset}", f"dataset.conversations={n}", *pool,
                    f"policy_dir={run / 'policy'}", f"label={trainer}", *run_dir_args(eval_dir),
                    *scale_overrides(scale, "eval", steps, eval_examples), *extra],
                    eval_dir / "metrics.json", "eval"))
    return out
