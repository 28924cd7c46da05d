"""Where one ACT training step spends its time: sampling / simulation / forward-backward (issue 14, item 4).

One ACT step (Alg. 2) = the :class:`~clarifylab.methods.act.replacer.ACTReplacer` hook (sample y from the current
policy, classify it, simulate the trajectory with the user simulator and the policy, score it with H, re-tokenize)
followed by the :class:`~clarifylab.training.preference_module.PreferenceModule` loss (policy forward + backward,
reference forward) and an optimizer step. The script runs the real replacer and module, unchanged, on a batch of
the preference bench's pairs (``bench/pairs.py``: PACIFIC or the long-table synthetic corpus, gold reply vs a reply
of the other action) and times each part by wrapping the replacer's collaborators (policy backend, classifier,
simulator, H) in timing proxies: the first policy call of a step is the on-policy sampling, later policy calls are
the simulated assistant turns.

Rows (median over ``--steps`` timed steps after ``--warmup`` untimed ones):

- ``sampling``: the one batched generate of y ~ pi_theta(.|p);
- ``simulation``: policy turns + user simulator + classifier (A(y) and every simulated turn) + H;
- ``re-tokenize + other``: the rest of the replacer hook (re-tokenization, collation, bookkeeping);
- ``forward + backward``: ``PreferenceModule.pair_loss`` (policy with grad, reference without) and ``backward``;
- ``optimizer``: AdamW step + zero_grad.

Usage::

    python bench/act_step_split.py --pairs 4 --steps 3 --threads 2 --out bench/results/act_split

Writes ``<out>/act_step_split.json`` and ``<out>/act_step_split.md`` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py`: make the bench package importable
    sys.path.insert(0, str(ROOT))
import bench  # noqa: E402,F401  (puts this checkout's src/ first on sys.path, sets the offline environment)

from bench.outputs import run_main, write_bench_result  # noqa: E402
from bench.pairs import SOURCES, resolve_source  # noqa: E402
from bench.rollout_throughput import STUDENTS, load_model  # noqa: E402
from clarifylab.errors import ConfigError  # noqa: E402

PARTS = ("sampling", "simulation: policy turns", "simulation: user simulator", "simulation: classifier",
         "simulation: H", "re-tokenize + other", "forward + backward", "optimizer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4, help="pairs per training batch (default 4)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="pairs as in bench/pairs.py: PACIFIC (auto: when present) or long-table synthetic")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--max-prompt-tokens", type=int, default=1024, help="prompt cap (bench/pairs.py)")
    parser.add_argument("--student", choices=STUDENTS, default="smollm2", help="policy (LoRA r16) and simulator")
    parser.add_argument("--simulator", choices=("llm", "oracle"), default="llm",
                        help="llm: a second, frozen copy of the student plays the user")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=2048, help="token cap per side (longer pairs dropped)")
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--no-simulation", action="store_true", help="ACT Table 5 ablation: sampling only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=os.environ.get("CLARIFYLAB_CACHE_DIR", str(ROOT / ".cache")))
    parser.add_argument("--out", default=None, help="output folder (default: outputs/bench/<UTC time stamp>)")
    args = parser.parse_args(argv)
    args.out = Path(args.out or ROOT / "outputs" / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    for name in ("pairs", "steps", "max_turns", "max_new_tokens", "max_prompt_tokens"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    args.source = resolve_source(args.source, args.data_dir)  # DataNotFoundError for a missing PACIFIC file
    return args


class Clock:
    """Accumulates seconds per part name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def timed(self, part: str | Callable[[], str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(part() if callable(part) else part, time.perf_counter() - started)


class TimedPolicy:
    """A policy backend proxy: the first ``complete`` of a step is ``sampling``, later ones are policy turns."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner, self.clock, self.calls = inner, clock, 0
        self.name, self.model_id = inner.name, inner.model_id

    def complete(self, batch: Sequence[Any], params: Any) -> list[str]:
        part = "sampling" if self.calls == 0 else "simulation: policy turns"
        self.calls += 1
        return self.clock.timed(part, self.inner.complete, batch, params)


class TimedProxy:
    """Times one method (``classify``, ``reply``) of ``inner`` under ``part``; forwards every other attribute."""

    def __init__(self, inner: Any, method: str, part: str, clock: Clock) -> None:
        self._inner, self._method, self._part, self._clock = inner, method, part, clock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name != self._method:
            return value
        return lambda *args, **kwargs: self._clock.timed(self._part, value, *args, **kwargs)


def act_pairs(source: str, data_dir: str, n: int, seed: int, tokenizer: Any, max_prompt_tokens: int
              ) -> tuple[list[Any], dict[str, Any]]:
    """``(pairs, examples by id)``: the preference bench's pairs (bench/pairs.py; ``meta.action`` = the gold action)
    and their decision points with the same prompt cap (the replacer simulates trajectories from them)."""
    from bench.pairs import build_pairs, cap_prompt, load_examples

    examples = load_examples(source, data_dir, seed)
    pairs = build_pairs(examples, tokenizer, n, seed, max_prompt_tokens)
    by_id = {e.id: e for e in examples}
    return pairs, {p.id: cap_prompt(by_id[p.id], tokenizer, max_prompt_tokens) for p in pairs}


def summarize(steps: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One row per part: median / min / max seconds over steps and the median's share of the median total."""
    total = statistics.median(s["total"] for s in steps)
    rows = []
    for part in (*PARTS, "total"):
        values = [s.get(part, 0.0) for s in steps]
        median = statistics.median(values)
        rows.append({"part": part, "median_s": median, "min_s": min(values), "max_s": max(values),
                     "share": median / total if total else 0.0})
    return rows


def markdown(result: dict[str, Any]) -> str:
    from clarifylab.evaluation.tables import markdown_table

    s = result["settings"]
    grouped = {"sampling": ["sampling"], "simulation": [p for p in PARTS if p.startswith("simulation")],
               "forward-backward": ["forward + backward", "optimizer"]}
    medians = {r["part"]: r["median_s"] for r in result["rows"]}
    total = medians["total"]
    summary = ", ".join(f"{name} {sum(medians[p] for p in parts):.2f} s ({sum(medians[p] for p in parts) / total:.0%})"
                        for name, parts in grouped.items())
    branches = ", ".join(f"{k}={v}" for k, v in result["branch_totals"].items() if v)
    return "\n".join([
        "# ACT step time split", "",
        f"{s['pairs']} {s['source']} pairs per step, policy = {s['student']} + LoRA r16 (reference = adapters off), "
        f"simulator = {s['simulator']}, heuristic classifier, max_turns={s['max_turns']}, "
        f"max_new_tokens={s['max_new_tokens']}, temperature={s['temperature']}, simulation={not s['no_simulation']}, "
        f"{s['steps']} timed steps after {s['warmup']} warm-up, torch threads={s['threads']}, {s['machine']}.", "",
        markdown_table(result["rows"], ["part", "median_s", "min_s", "max_s", "share"]), "",
        f"Per step (medians): {summary}; total {total:.2f} s.", "",
        f"Replacer branches over the timed steps: {branches or 'none'}.", ""])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.env.action_classifier import HeuristicActionClassifier
    from clarifylab.env.user_simulator import LLMUserSimulator, OracleUserSimulator
    from clarifylab.evaluation.run_provenance import code_version
    from clarifylab.methods.act.replacer import BRANCHES, ACTReplacer, ACTReplacerConfig
    from clarifylab.models import LoraSpec, ModelSpec, prepare_for_training
    from clarifylab.training.preference_data import PreferenceCollator, pad_token_id_of, tokenize_pairs
    from clarifylab.training.preference_module import PreferenceModule
    from clarifylab.training.task_success import trajectory_scorer

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"[act split] loading {args.student} ...", flush=True)
    base, tokenizer = load_model(args.student, args.cache_dir)
    pairs, examples = act_pairs(args.source, args.data_dir, args.pairs, args.seed, tokenizer, args.max_prompt_tokens)
    print(f"[act split] {len(pairs)} {args.source} pairs (prompts <= {args.max_prompt_tokens} tokens)", flush=True)
    lora = LoraSpec(r=16, alpha=32, dropout=0.0,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = prepare_for_training(base, ModelSpec(source="tiny", dtype="float32", lora=lora))
    pad = pad_token_id_of(tokenizer)
    module = PreferenceModule(model, lr=args.lr, beta=args.beta, reference="auto", pad_token_id=pad)
    items = tokenize_pairs(pairs, tokenizer, args.max_length, truncation="drop")
    if not items:
        raise ConfigError(f"every pair is longer than --max-length={args.max_length} tokens")
    batch = PreferenceCollator(pad)(items)

    clock = Clock()
    if args.simulator == "llm":
        simulator_model, _ = load_model(args.student, args.cache_dir)
        simulator = LLMUserSimulator(TransformersBackend(simulator_model, tokenizer, batch_size=len(items),
                                                         model_id="simulator"))
    else:
        simulator = OracleUserSimulator()
    policies: list[TimedPolicy] = []

    def policy_factory(mod: Any, size: int) -> TimedPolicy:
        policies.append(TimedPolicy(TransformersBackend(mod.model, tokenizer, batch_size=max(size, 1),
                                                        model_id="act-policy"), clock))
        return policies[-1]

    scorer = trajectory_scorer(None)
    config = ACTReplacerConfig(max_turns=args.max_turns, max_new_tokens=args.max_new_tokens,
                               temperature=args.temperature, seed=args.seed, simulation=not args.no_simulation,
                               max_length=args.max_length, truncation="drop")
    replacer = ACTReplacer(tokenizer, TimedProxy(HeuristicActionClassifier(), "classify", "simulation: classifier",
                                                 clock),
                           TimedProxy(simulator, "reply", "simulation: user simulator", clock), config,
                           scorer=lambda trajectories: clock.timed("simulation: H", scorer, trajectories),
                           examples=examples, policy_factory=policy_factory)
    module.pair_replacer = replacer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    model.train()

    steps: list[dict[str, float]] = []
    branch_totals = {branch: 0 for branch in BRANCHES}
    generated = []
    for step in range(args.warmup + args.steps):
        clock.seconds = {}
        started = time.perf_counter()
        with warnings.catch_warnings():  # the replacer logs through LightningModule.log: a no-op without a Trainer
            warnings.filterwarnings("ignore", message=r".*self\.log\(\)` but the `self\.trainer` reference")
            replaced = module.replace_pairs(batch)
        hook = time.perf_counter() - started
        accounted = sum(clock.seconds.values())
        clock.add("re-tokenize + other", hook - accounted)
        loss = clock.timed("forward + backward", lambda: _forward_backward(module, replaced))
        clock.timed("optimizer", lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
        timed = dict(clock.seconds, total=time.perf_counter() - started)
        policy = policies[-1]
        timed_step = step >= args.warmup
        if timed_step:
            steps.append(timed)
            generated.append(policy.inner.usage["completion_tokens"])
            for branch, count in replacer.last.items():
                branch_totals[branch] = branch_totals.get(branch, 0) + count
        print(f"[act split] step {step + 1}/{args.warmup + args.steps}{'' if timed_step else ' (warm-up)'}: "
              f"{timed['total']:.2f} s (sampling {timed.get('sampling', 0):.2f}, simulation "
              f"{sum(v for k, v in timed.items() if k.startswith('simulation')):.2f}, fwd+bwd "
              f"{timed['forward + backward']:.2f}), {policy.calls} policy calls, loss {loss:.4f}, "
              f"branches {dict((k, v) for k, v in replacer.last.items() if v)}", flush=True)

    result = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "pairs_in_batch": len(items),
                     "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                     "torch": torch.__version__, "code_version": code_version(),
                     "chosen_sequence_tokens": [int(n) for n in batch.chosen["attention_mask"].sum(dim=1)]},
        "rows": summarize(steps), "steps": steps, "policy_generated_tokens": generated,
        "branch_totals": branch_totals,
    }
    write_bench_result(args.out, "act_step_split", result, markdown(result), "act split")
    return result


def _forward_backward(module: Any, batch: Any) -> float:
    """``PreferenceModule.pair_loss`` (policy with grad, reference without) and ``backward``; returns the loss."""
    loss = module.pair_loss(batch)[0]
    loss.backward()
    return float(loss.detach())


if __name__ == "__main__":
    run_main(main)
