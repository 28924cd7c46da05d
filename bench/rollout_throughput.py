"""Rollout throughput: one batched rollout over N examples vs one rollout per example (issue 14, item 4).

The same model (the bundled SmolLM2-135M-Instruct by default) is the policy and the LLM user simulator; the same
N decision points (PACIFIC from ``../shared/data`` when present, else the long-table synthetic corpus; prompts cut
to ``--max-prompt-tokens``, both as in ``bench/pairs.py``) are rolled out greedily
(:func:`clarifylab.env.rollout.rollout`) twice:

- ``batched``: one ``rollout`` call for all N; every role's backend decodes up to ``--batch-size`` rows together
  (continuous batching: left-padded, KV cache, a row that reached its end-of-turn token gives its place to the
  next prompt) and prefills prompts that share prefixes once (``backends/shared_prefill.py``);
- ``unshared``: the same without the shared-prefix prefill (``share_prefixes=False``): what batching alone gives;
- ``sequential``: one ``rollout`` call per example with ``batch_size=1`` backends (the per-example loop: one
  ``generate`` per prompt).

Each mode runs ``--repeats`` times, alternating (batched, unshared, sequential, sequential, unshared, batched, ...)
so a drift in the machine's load hits all. Reported per mode: median wall seconds [min, max], trajectories/s,
generated tokens/s (policy + simulator + classifier, up to and including each end-of-turn token,
:attr:`TransformersBackend.usage`), prompt tokens and the prompt tokens that ran through the model, backend calls;
each batched mode's ratio to the sequential one; and how many trajectories are identical to the sequential ones.
Greedy decoding is deterministic per mode, but a left-padded batch runs other matrix shapes than a single row, so
fp32 rounding can flip a near-tie argmax and a few trajectories may differ; the count is reported, not asserted.

Usage::

    python bench/rollout_throughput.py --examples 16 --batch-size 8 --threads 2 --repeats 2

Writes ``<out>/rollout_throughput.json`` and ``<out>/rollout_throughput.md`` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py`: make the bench package importable
    sys.path.insert(0, str(ROOT))
import bench  # noqa: E402,F401  (puts this checkout's src/ first on sys.path, sets the offline environment)

from bench.outputs import run_main, write_bench_result  # noqa: E402
from bench.pairs import SOURCES, resolve_source  # noqa: E402
from clarifylab.errors import ConfigError  # noqa: E402

STUDENTS = ("smollm2", "tiny")
SIMULATORS = ("llm", "oracle")
CLASSIFIERS = ("heuristic", "llm")
MODES = ("batched", "unshared", "sequential")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=16, help="decision points N (default 16)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="conversations per generate in the batched mode (default 8)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="decision points: PACIFIC (auto: when <data-dir>/pacific/validation.json exists) or the "
                             "synthetic corpus with long tables (bench/pairs.py)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--max-prompt-tokens", type=int, default=1024,
                        help="longer prompts have their context cut to fit (bench/pairs.py cap_prompt)")
    parser.add_argument("--student", choices=STUDENTS, default="smollm2", help="policy and simulator model")
    parser.add_argument("--simulator", choices=SIMULATORS, default="llm")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="heuristic")
    parser.add_argument("--max-turns", type=int, default=3, help="assistant turns per trajectory")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="per policy reply")
    parser.add_argument("--first-ask", action="store_true",
                        help="start every trajectory from a fixed clarifying question (forces simulated rounds)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs per mode, alternating (batched, sequential, sequential, batched, ...); median")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=os.environ.get("CLARIFYLAB_CACHE_DIR", str(ROOT / ".cache")))
    parser.add_argument("--out", default=None, help="output folder (default: outputs/bench/<UTC time stamp>)")
    args = parser.parse_args(argv)
    args.out = Path(args.out or ROOT / "outputs" / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    if args.examples < 1:
        raise ConfigError(f"--examples must be >= 1, got {args.examples}")
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_turns < 1 or args.max_new_tokens < 1 or args.max_prompt_tokens < 1:
        raise ConfigError("--max-turns, --max-new-tokens and --max-prompt-tokens must be >= 1")
    args.source = resolve_source(args.source, args.data_dir)  # DataNotFoundError for a missing PACIFIC file
    return args


FIRST_ASK = "Could you tell me which one you mean?"


def decision_points(source: str, data_dir: str, n: int, seed: int, tokenizer: Any, max_prompt_tokens: int
                    ) -> list[Any]:
    """The first ``n`` decision points of ``source`` (bench/pairs.py: PACIFIC in file order, or the long-table
    synthetic corpus) whose prompt fits ``max_prompt_tokens`` after cutting its context (``cap_prompt``)."""
    from bench.pairs import cap_prompt, load_examples

    chosen = []
    for example in load_examples(source, data_dir, seed):
        capped = cap_prompt(example, tokenizer, max_prompt_tokens)
        if capped is not None:
            chosen.append(capped)
        if len(chosen) == n:
            return chosen
    raise ConfigError(f"only {len(chosen)} {source} examples fit --max-prompt-tokens={max_prompt_tokens}; ask for "
                      "fewer --examples")


def load_model(student: str, cache_dir: str) -> tuple[Any, Any]:
    """The frozen (no LoRA) model and tokenizer of ``student``, in eval mode."""
    from clarifylab.models import ModelSpec, load_model_and_tokenizer

    spec = ModelSpec(source="smollm2_gguf" if student == "smollm2" else "tiny", dtype="float32")
    model, tokenizer = load_model_and_tokenizer(spec, cache_dir)
    return model.eval(), tokenizer


def make_roles(model: Any, tokenizer: Any, batch_size: int, share: bool, simulator: str, classifier: str,
               pool: list[Any]) -> tuple[list[Any], Any, Any, Any]:
    """``(backends, policy, classifier, simulator)``: fresh backends over ``model`` (usage counted per mode)."""
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.env.action_classifier import HeuristicActionClassifier
    from clarifylab.env.llm_action_classifier import FewShotLLMActionClassifier
    from clarifylab.env.user_simulator import LLMUserSimulator, OracleUserSimulator

    policy = TransformersBackend(model, tokenizer, batch_size=batch_size, model_id="policy", share_prefixes=share)
    backends = [policy]
    if simulator == "llm":
        backends.append(TransformersBackend(model, tokenizer, batch_size=batch_size, model_id="simulator",
                                            share_prefixes=share))
        user = LLMUserSimulator(backends[-1])
    else:
        user = OracleUserSimulator()
    if classifier == "llm":
        backends.append(TransformersBackend(model, tokenizer, batch_size=batch_size, model_id="classifier",
                                            share_prefixes=share))
        labeller = FewShotLLMActionClassifier(backends[-1], pool, k=2)
    else:
        labeller = HeuristicActionClassifier()
    return backends, policy, labeller, user


def run_mode(mode: str, model: Any, tokenizer: Any, examples: list[Any], args: argparse.Namespace,
             batch_size: int) -> dict[str, Any]:
    """Roll out ``examples`` in ``mode``; returns timings, usage and the trajectories (as dicts)."""
    from clarifylab.backends.base import SamplingParams
    from clarifylab.env.rollout import rollout

    params = SamplingParams(max_new_tokens=args.max_new_tokens)  # greedy
    size = 1 if mode == "sequential" else batch_size
    backends, policy, classifier, simulator = make_roles(model, tokenizer, size, mode == "batched", args.simulator,
                                                         args.classifier, examples)
    groups = [[e] for e in examples] if mode == "sequential" else [examples]
    trajectories: list[Any] = []
    started = time.perf_counter()
    for index, group in enumerate(groups):
        first = [FIRST_ASK] * len(group) if args.first_ask else None
        trajectories += rollout(policy, group, classifier, simulator, max_turns=args.max_turns, params=params,
                                first_responses=first)
        if mode == "sequential":
            print(f"  [{mode}] {index + 1}/{len(groups)} examples, {time.perf_counter() - started:.1f} s", flush=True)
    seconds = max(time.perf_counter() - started, 1e-9)
    usage = {b.model_id: dict(b.usage) for b in backends}
    generated = sum(u["completion_tokens"] for u in usage.values())
    return {"mode": mode, "batch_size": size, "rollout_calls": len(groups), "seconds": seconds,
            "trajectories": len(trajectories), "trajectories_per_s": len(trajectories) / seconds,
            "generated_tokens": generated, "generated_tokens_per_s": generated / seconds,
            "prompt_tokens": sum(u["prompt_tokens"] for u in usage.values()),
            "prefill_tokens": sum(u["prefill_tokens"] for u in usage.values()),
            "backend_calls": sum(u["calls"] for u in usage.values()), "usage": usage,
            "simulated_rounds": sum(len(t.actions) - 1 for t in trajectories),
            "records": [t.to_dict() for t in trajectories]}


def summarize_mode(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode over its repeats: the first run's counts and records, the median seconds (rates from it), min/max
    seconds, and whether every repeat produced the same trajectories (greedy: it should)."""
    seconds = [r["seconds"] for r in runs]
    median = statistics.median(seconds)
    first = runs[0]
    return {**first, "seconds": median, "seconds_min": min(seconds), "seconds_max": max(seconds),
            "repeats": len(runs), "trajectories_per_s": first["trajectories"] / median,
            "generated_tokens_per_s": first["generated_tokens"] / median,
            "repeats_identical": all(r["records"] == first["records"] for r in runs)}


def agreement(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    """How many trajectories are identical in both runs, and the ids that differ."""
    differ = [x["id"] for x, y in zip(a, b, strict=True) if x != y]
    return {"identical": len(a) - len(differ), "total": len(a), "differing_ids": differ}


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown report (settings, one row per mode, ratios, agreement)."""
    from clarifylab.evaluation.tables import markdown_table

    s = result["settings"]
    columns = ("mode", "batch_size", "rollout_calls", "backend_calls", "seconds", "seconds_min", "seconds_max",
               "trajectories", "trajectories_per_s", "prompt_tokens", "prefill_tokens", "generated_tokens",
               "generated_tokens_per_s", "simulated_rounds")
    rows = [{k: r[k] for k in columns} for r in result["modes"]]
    lines = [f"# Rollout throughput: batched vs one example at a time", "",
             f"{s['examples']} {s['source']} examples, policy + {s['simulator']} simulator = {s['student']}, "
             f"{s['classifier']} classifier, max_turns={s['max_turns']}, max_new_tokens={s['max_new_tokens']}, "
             f"greedy, first_ask={s['first_ask']}, torch threads={s['threads']}, {s['machine']}; seconds = median of "
             f"{s['repeats']} alternating runs per mode [min, max].", "",
             markdown_table(rows, list(rows[0])), "",
             f"Batched / sequential: **{result['speedup_trajectories']:.2f}x** trajectories/s, "
             f"{result['speedup_tokens']:.2f}x generated tokens/s; without the shared-prefix prefill "
             f"{result['speedup_unshared']:.2f}x trajectories/s.", ""]
    for mode in ("batched", "unshared"):
        agree = result["agreement"][mode]
        lines += [f"Trajectories identical to the sequential ones, {mode}: {agree['identical']} / {agree['total']}"
                  + (f" (differ: {', '.join(agree['differing_ids'])}; batch shapes change fp32 rounding, which can "
                     "flip a near-tie greedy token)" if agree["differing_ids"] else "") + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    from clarifylab.evaluation.run_provenance import code_version

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"[rollout bench] loading {args.student} ...", flush=True)
    model, tokenizer = load_model(args.student, args.cache_dir)
    examples = decision_points(args.source, args.data_dir, args.examples, args.seed, tokenizer,
                               args.max_prompt_tokens)
    batch_size = args.batch_size
    print(f"[rollout bench] {len(examples)} {args.source} decision points (prompts <= {args.max_prompt_tokens} "
          "tokens)", flush=True)
    from clarifylab.backends.base import SamplingParams
    from clarifylab.backends.transformers_backend import TransformersBackend

    TransformersBackend(model, tokenizer, batch_size=2).complete(  # warm-up (kernels, allocator)
        [[{"role": "user", "content": "hello"}]] * 2, SamplingParams(max_new_tokens=4))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES if repeat % 2 == 0 else MODES[::-1]:  # alternating: a b c, c b a, a b c, ...
            print(f"[rollout bench] repeat {repeat + 1}/{args.repeats}: {mode} "
                  f"(batch_size={1 if mode == 'sequential' else batch_size}) ...", flush=True)
            m = run_mode(mode, model, tokenizer, examples, args, batch_size)
            runs[mode].append(m)
            print(f"[rollout bench] {mode}: {m['seconds']:.1f} s, {m['trajectories_per_s']:.3f} trajectories/s, "
                  f"{m['generated_tokens_per_s']:.1f} generated tokens/s, {m['backend_calls']} backend calls",
                  flush=True)
    modes = [summarize_mode(runs[mode]) for mode in MODES]
    batched, unshared, sequential = modes
    result = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "batch_size": batch_size,
                     "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                     "torch": torch.__version__, "code_version": code_version()},
        "modes": [{k: v for k, v in m.items() if k != "records"} for m in modes],
        "speedup_trajectories": batched["trajectories_per_s"] / sequential["trajectories_per_s"],
        "speedup_tokens": batched["generated_tokens_per_s"] / max(sequential["generated_tokens_per_s"], 1e-9),
        "speedup_unshared": unshared["trajectories_per_s"] / sequential["trajectories_per_s"],
        "agreement": {m["mode"]: agreement(m["records"], sequential["records"]) for m in (batched, unshared)},
        "trajectories": {m["mode"]: m["records"] for m in modes},
    }
    write_bench_result(args.out, "rollout_throughput", result, markdown(result), "rollout bench")
    return result


if __name__ == "__main__":
    run_main(main)
