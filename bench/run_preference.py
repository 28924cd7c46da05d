"""Preference-step bench (issue 14, item 4): this project's DPO step vs TRL's DPOTrainer vs the floor, same model,
same pairs, same order, same batch settings, each side in its own process, alternating (a, b, c, a, b, c, ...).

1. Pairs (``bench/pairs.py``): ``--pairs`` PACIFIC decision points from ``--data-dir`` (or the synthetic corpus
   with long tables when it is absent), prompts capped at ``--max-prompt-tokens``; written to ``<out>/pairs.jsonl``.
2. For each of ``--repeats`` rounds, each side of ``--sides`` runs ``bench/preference_step.py`` in a fresh process
   (``--steps`` optimizer steps of ``--batch-size`` pairs, ``--threads`` torch threads, fp32, LoRA r16); its peak
   RSS is the child's ``ru_maxrss`` (``os.wait4``), its per-step seconds come from the child's JSON.
3. The table (``bench/preference_table.py``): s/step median [min–max] over steps 2..N of every run (step 1 is
   warm-up, listed apart), unique tokens/s (prompt + chosen + rejected, the prompt once), peak RSS, × floor, the
   project-vs-TRL ratios and every side's step-1 loss (ln 2 = 0.693147 when all is well).

Writes ``<out>/pairs.jsonl``, ``<out>/runs/<side>-r<k>.json`` (+ ``.log``: the child's stderr),
``<out>/preference_step.md`` and ``<out>/preference_step.json`` (settings, provenance, pair statistics, every
run), atomically. ``--sides`` may name the project side twice with a forward mode: ``project:packed,
project:concatenated,trl,floor``.

Usage::

    make bench                                   # the defaults below, after installing requirements/bench.txt
    python bench/run_preference.py --pairs 4 --steps 2 --max-prompt-tokens 256 --repeats 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py`: make the bench package importable
    sys.path.insert(0, str(ROOT))
import bench  # noqa: E402,F401  (puts this checkout's src/ first on sys.path, sets the offline environment)

from bench.preference_step import FORWARD_MODES, SIDES, STUDENTS, check_side_dependencies  # noqa: E402
from clarifylab.errors import ClarifyLabError, ConfigError  # noqa: E402

STEP_SCRIPT = ROOT / "bench" / "preference_step.py"
DESCRIPTIONS = {
    "project": "this project (PreferenceModule.pair_loss, reference = adapters off)",
    "trl": "TRL DPOTrainer (same pairs, order, LoRA; no grad checkpointing)",
    "floor": "floor: prompt once (KV cache), replies continue; 1 fwd+bwd + 1 no-grad fwd",
}


def parse_sides(text: str) -> list[tuple[str, str, str | None]]:
    """``"project:packed,trl,floor"`` -> ``[(label, side, forward mode or None), ...]``; labels are unique.

    Raises:
        ConfigError: an unknown side or mode, a mode on a side other than ``project``, a repeated label.
    """
    out: list[tuple[str, str, str | None]] = []
    for label in [part.strip() for part in text.split(",") if part.strip()]:
        side, _, mode = label.partition(":")
        if side not in SIDES:
            raise ConfigError(f"--sides: {side!r} is not one of {list(SIDES)}")
        if mode and (side != "project" or mode not in FORWARD_MODES):
            raise ConfigError(f"--sides: {label!r}: only the project side takes a forward mode, one of "
                              f"{list(FORWARD_MODES)}")
        if any(label == seen for seen, _, _ in out):
            raise ConfigError(f"--sides names {label!r} twice")
        out.append((label, side, mode or None))
    if not out:
        raise ConfigError("--sides is empty")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=16, help="preference pairs (default 16)")
    parser.add_argument("--batch-size", type=int, default=2, help="pairs per optimizer step (default 2)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (default 12; step 1 = warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all sides (default 2)")
    parser.add_argument("--max-prompt-tokens", type=int, default=1024, help="prompt cap in tokens (default 1024)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per side, prompt + reply (default: --max-prompt-tokens + 128)")
    parser.add_argument("--source", choices=("auto", "pacific", "synthetic"), default="auto",
                        help="auto = PACIFIC when <data-dir>/pacific/validation.json exists, else synthetic")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--sides", default="project,trl,floor",
                        help="comma-separated, run in this order each round; project:<auto|packed|prefix_cache|concatenated>")
    parser.add_argument("--forward", choices=FORWARD_MODES, default="auto",
                        help="forward mode of a plain `project` side (default auto)")
    parser.add_argument("--student", choices=STUDENTS, default="smollm2")
    parser.add_argument("--cache-dir", default=str(ROOT / ".cache"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads per side (default 2)")
    parser.add_argument("--lr", type=float, default=None, help="default: conf/trainer/dpo.yaml's lr")
    parser.add_argument("--beta", type=float, default=None, help="default: conf/trainer/dpo.yaml's beta")
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default: outputs/bench/<UTC time stamp>")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Fill the defaults that depend on others and raise ``ConfigError`` for the first bad value."""
    from omegaconf import OmegaConf

    for name in ("pairs", "batch_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.steps < 2:
        raise ConfigError(f"--steps={args.steps} must be >= 2 (step 1 is warm-up and not timed)")
    if args.max_prompt_tokens < 16:
        raise ConfigError(f"--max-prompt-tokens={args.max_prompt_tokens} must be >= 16")
    args.max_length = args.max_length or args.max_prompt_tokens + 128
    if args.max_length <= args.max_prompt_tokens:
        raise ConfigError(f"--max-length={args.max_length} must exceed --max-prompt-tokens={args.max_prompt_tokens}")
    dpo = OmegaConf.load(ROOT / "conf" / "trainer" / "dpo.yaml")
    args.lr = float(dpo.lr) if args.lr is None else args.lr
    args.beta = float(dpo.beta) if args.beta is None else args.beta
    args.out = Path(args.out or ROOT / "outputs" / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())).resolve()
    args.cache_dir = str(Path(args.cache_dir).resolve())  # the children run in the repository root


def build_bench_pairs(args: argparse.Namespace) -> tuple[str, list[Any], list[int], dict[str, Any]]:
    """``(source, pairs, unique tokens per step, pair statistics)``; writes ``<out>/pairs.jsonl``."""
    from bench.pairs import (build_pairs, load_examples, pair_statistics, resolve_source, step_schedule,
                             unique_tokens)
    from bench.preference_step import load_tokenizer, student_spec
    from clarifylab.training.preference_data import tokenize_pair, write_pairs

    source = resolve_source(args.source, args.data_dir)
    tokenizer = load_tokenizer(student_spec(args.student, args.lora_dropout), args.cache_dir)
    pairs = build_pairs(load_examples(source, args.data_dir, args.seed, args.pairs), tokenizer, args.pairs, args.seed,
                        args.max_prompt_tokens)
    tokenized = [tokenize_pair(pair, tokenizer, args.max_length, truncation="error") for pair in pairs]
    per_pair = [unique_tokens(item) for item in tokenized]
    step_tokens = [sum(per_pair[i] for i in indices)
                   for indices in step_schedule(len(pairs), args.batch_size, args.steps)]
    write_pairs(args.out / "pairs.jsonl", pairs)
    return source, pairs, step_tokens, pair_statistics(tokenized)


def run_child(args: argparse.Namespace, label: str, side: str, mode: str | None, repeat: int) -> dict[str, Any]:
    """Run one side in a fresh process; its result JSON plus ``peak_rss_kib`` from ``os.wait4`` (that child only).

    Raises:
        ClarifyLabError: the child failed (the message is its last stderr line; the whole log is kept).
    """
    name = f"{label.replace(':', '-')}-r{repeat}"
    result_path, log_path = args.out / "runs" / f"{name}.json", args.out / "runs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(STEP_SCRIPT), "--side", side, "--pairs", str(args.out / "pairs.jsonl"),
               "--result", str(result_path), "--label", f"{label} r{repeat}", "--student", args.student,
               "--cache-dir", str(args.cache_dir), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--max-length", str(args.max_length), "--lr", repr(args.lr), "--beta", repr(args.beta),
               "--lora-dropout", repr(args.lora_dropout), "--forward", mode or args.forward,
               "--threads", str(args.threads), "--seed", str(args.seed)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    start = time.monotonic()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=None, stderr=log, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        raise ClarifyLabError(f"side {label} (round {repeat}) failed with exit code {child.returncode}: "
                              f"{lines[-1] if lines else 'no output'} (log: {log_path})")
    result = json.loads(result_path.read_text())
    result.update(label=label, repeat=repeat, peak_rss_kib_self=result["peak_rss_kib"],
                  peak_rss_kib=usage.ru_maxrss, process_wall_s=time.monotonic() - start)
    return result


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    """Code version, library versions and the machine."""
    import importlib.metadata as metadata

    from clarifylab.evaluation.run_provenance import code_version

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"code_version": code_version(ROOT), "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor(), "cpus": os.cpu_count(), "command": sys.argv,
            "versions": {name: version(name) for name in ("torch", "transformers", "peft", "trl", "datasets")},
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        sides = parse_sides(args.sides)
        for _, side, _ in sides:
            check_side_dependencies(side)
        return run(args, sides)
    except ClarifyLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, sides: list[tuple[str, str, str | None]]) -> int:
    from bench.preference_table import add_ratios, format_table, side_summary
    from clarifylab.io import write_json, write_text

    record: dict[str, Any] = {"provenance": provenance(args)}
    args.out.mkdir(parents=True, exist_ok=True)
    source, pairs, step_tokens, stats = build_bench_pairs(args)
    print(f"== {len(pairs)} {source} pairs: prompts {stats['prompt_tokens_mean']:.0f} tokens on average "
          f"[{stats['prompt_tokens_min']}–{stats['prompt_tokens_max']}], replies {stats['reply_tokens_min']}–"
          f"{stats['reply_tokens_max']}; {args.steps} steps × {args.batch_size} pairs, unique tokens per step "
          f"{statistics.mean(step_tokens):.0f} on average; {args.repeats} round(s) of {[s[0] for s in sides]}; "
          f"out: {args.out}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in sides}
    for repeat in range(1, args.repeats + 1):
        for label, side, mode in sides:
            print(f"-- round {repeat}/{args.repeats}: {label}", flush=True)
            runs[label].append(run_child(args, label, side, mode, repeat))
    summaries = add_ratios({label: side_summary(runs[label], step_tokens) for label in runs})
    descriptions = {}
    for label, side, mode in sides:
        forward = runs[label][0].get("forward")
        descriptions[label] = DESCRIPTIONS[side] + (f"; forward {forward}" if forward else "")
        if side == "trl":
            descriptions[label] = descriptions[label].replace("TRL", f"TRL {runs[label][0].get('trl', '')}")
    table = format_table(summaries, descriptions, args.steps, args.repeats)
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    record.update(settings=settings, source=source, pair_statistics=stats, step_unique_tokens=step_tokens,
                  summaries=summaries, runs=runs, table=table)
    write_json(args.out / "preference_step.json", record)
    write_text(args.out / "preference_step.md", table)
    print(f"\n{table}\nwritten: {args.out / 'preference_step.md'}, {args.out / 'preference_step.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
