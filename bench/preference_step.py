"""One side of the preference-step bench, in its own process (issue 14, item 4): time ``--steps`` optimizer steps
of DPO (sigmoid loss) on the bench's pairs and write a JSON result. ``bench/run_preference.py`` runs the sides
alternately and prints the table; run this directly only to debug one side.

Every side: the same model (``--student``: the bundled SmolLM2-135M-Instruct, or the tiny test model) in fp32 with
the project's LoRA (``conf/student/<student>.yaml``: r16 on every projection for SmolLM2; dropout ``--lora-dropout``,
0 by default so that the sides' losses are comparable), adapters initialised after ``transformers.set_seed(seed)``
(so identical on every side), the reference = the same model with its adapters disabled, AdamW at a constant
``--lr`` (no warmup, no weight decay), gradients clipped at norm 1, the same batches in the same order
(``bench.pairs.step_schedule``), ``--threads`` torch threads. Timed per step: forward(s) + backward + optimizer
step; batching/collation happens before the clock starts.

Sides:

- ``project``: this project's step, ``PreferenceModule.pair_loss(batch)`` + backward + optimizer step, on
  batches from ``tokenize_pair`` + ``PreferenceCollator``, the optimizer from ``build_optimizer_and_scheduler``.
  ``--forward auto|packed|prefix_cache|concatenated`` is passed to ``PreferenceModule`` when it takes a ``forward`` argument.
- ``trl``: TRL's ``DPOTrainer`` (``pip install trl==1.16.0``: ``make bench``) given the base model and the same
  LoRA as ``peft_config`` (reference = adapters disabled), conversational pairs, no gradient checkpointing,
  sequential sampling; each optimizer step timed by a ``TrainerCallback`` (``on_step_begin`` -> ``on_step_end``).
- ``floor``: per pair, the prompt runs once with the KV cache and the chosen and rejected continuations continue
  from it (two rows over the cached prompt, right-padded to the longer reply); one forward+backward under the
  policy and one no-grad forward under the reference over the unique tokens; the same loss
  (``training.losses.preference_loss``, sigmoid).

Step 1's loss is ``ln 2 = 0.693147`` on every side (a fresh LoRA's ``B = 0``: policy = reference). The process
reports its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``; the driver also reads it from ``wait4``).

Usage::

    python bench/preference_step.py --side floor --pairs outputs/bench/<stamp>/pairs.jsonl --result floor.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py`: make the bench package importable
    sys.path.insert(0, str(ROOT))
import bench  # noqa: E402,F401  (puts this checkout's src/ first on sys.path, sets the offline environment)

from clarifylab.errors import ClarifyLabError, ConfigError  # noqa: E402

SIDES = ("project", "trl", "floor")
FORWARD_MODES = ("auto", "packed", "prefix_cache", "concatenated")
STUDENTS = ("smollm2", "tiny")
TRL_VERSION = "1.16.0"


class MissingDependencyError(ClarifyLabError):
    """A side's library is not installed (one line: what to run)."""


def check_side_dependencies(side: str) -> None:
    """Raise :class:`MissingDependencyError` when ``side`` cannot run here (before any model loads)."""
    if side not in SIDES:
        raise ConfigError(f"side {side!r} is not one of {list(SIDES)}")
    needed = {"project": ("torch", "transformers", "peft"), "floor": ("torch", "transformers", "peft"),
              "trl": ("torch", "transformers", "peft", "trl", "datasets")}[side]
    for module in needed:
        if importlib.util.find_spec(module) is None:
            hint = (f"run `make bench` (installs requirements/bench.txt: trl=={TRL_VERSION})" if module == "trl"
                    else "run `make venv`")
            raise MissingDependencyError(f"side {side!r} needs the Python package {module!r}, which is not "
                                         f"installed: {hint}")


# ---- model ----


def student_spec(student: str, lora_dropout: float) -> Any:
    """The :class:`ModelSpec` of ``conf/student/<student>.yaml`` (the project's LoRA options), dropout replaced."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if student not in STUDENTS:
        raise ConfigError(f"--student={student!r} is not one of {list(STUDENTS)}")
    spec = instantiate(OmegaConf.load(ROOT / "conf" / "student" / f"{student}.yaml"), _convert_="all")
    if spec.lora is None or not spec.lora.enabled:
        raise ConfigError(f"conf/student/{student}.yaml has no LoRA; the bench trains LoRA adapters")
    spec.lora.dropout = lora_dropout
    spec.lora.validate()
    return spec


def load_tokenizer(spec: Any, cache_dir: str | Path) -> Any:
    """The student's tokenizer without loading its weights (pad = eos when it has no pad token)."""
    if spec.source == "tiny":
        from clarifylab.models import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
    else:
        from transformers import AutoTokenizer

        from clarifylab.models import ensure_smollm2_converted

        tokenizer = AutoTokenizer.from_pretrained(str(ensure_smollm2_converted(cache_dir)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(spec: Any, cache_dir: str | Path) -> tuple[Any, Any]:
    """Base model (fp32 per the spec, no adapters) and tokenizer."""
    from clarifylab.models import load_model_and_tokenizer

    return load_model_and_tokenizer(spec, cache_dir)


def load_policy(spec: Any, cache_dir: str | Path, seed: int) -> tuple[Any, Any]:
    """Base model + the spec's LoRA, adapters initialised right after ``transformers.set_seed(seed)`` (as TRL's
    ``DPOTrainer`` does before its ``get_peft_model``), so every side starts from the same weights."""
    from transformers import set_seed

    from clarifylab.models import apply_lora

    model, tokenizer = load_base(spec, cache_dir)
    set_seed(seed)
    return apply_lora(model, spec.lora), tokenizer


# ---- shared step loop ----


class StepLog:
    """Per-step wall seconds and losses; prints one progress line per step."""

    def __init__(self, label: str, steps: int) -> None:
        self.label, self.steps = label, steps
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def record(self, seconds: float, loss: float) -> None:
        self.seconds.append(seconds)
        self.losses.append(loss)
        print(f"[{self.label}] step {len(self.seconds)}/{self.steps}: {seconds:.3f} s, loss {loss:.6f}", flush=True)


def manual_loop(schedule: Sequence[Sequence[int]], make_batch: Callable[[Sequence[int]], Any],
                step_loss: Callable[[Any], Any], parameters: list[Any], optimizer: Any, scheduler: Any,
                log: StepLog, max_grad_norm: float = 1.0) -> None:
    """``for each step: batch = make_batch(indices)`` (untimed), then timed: ``loss = step_loss(batch)``, backward,
    clip to ``max_grad_norm``, optimizer and scheduler step, zero grads."""
    import torch

    for indices in schedule:
        batch = make_batch(indices)
        start = time.perf_counter()
        loss = step_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        log.record(time.perf_counter() - start, float(loss.detach()))


def constant_adamw(named_parameters: Any, lr: float, steps: int) -> tuple[Any, Any]:
    """The project's AdamW + constant schedule (``training.optim``), no warmup, no weight decay."""
    from clarifylab.training.optim import build_optimizer_and_scheduler

    built = build_optimizer_and_scheduler(named_parameters, lr=lr, weight_decay=0.0, warmup_ratio=0.0,
                                          lr_schedule="constant", total_steps=steps)
    return built["optimizer"], built["lr_scheduler"]["scheduler"]


def tokenize_all(pairs: Sequence[Any], tokenizer: Any, max_length: int) -> list[Any]:
    """The project's tokenization of every pair (``truncation="error"``: a pair never silently shrinks)."""
    from clarifylab.training.preference_data import tokenize_pair

    return [tokenize_pair(pair, tokenizer, max_length, truncation="error") for pair in pairs]


# ---- (a) project ----


def run_project(pairs: Sequence[Any], schedule: Sequence[Sequence[int]], args: argparse.Namespace,
                log: StepLog) -> dict[str, Any]:
    """This project's preference step (module docstring); returns ``{"forward": the mode used}``."""
    from clarifylab.training.preference_data import PreferenceCollator, pad_token_id_of
    from clarifylab.training.preference_module import PreferenceModule

    model, tokenizer = load_policy(student_spec(args.student, args.lora_dropout), args.cache_dir, args.seed)
    tokenized = tokenize_all(pairs, tokenizer, args.max_length)
    module = PreferenceModule(model, lr=args.lr, beta=args.beta, loss_type="sigmoid", reference="adapter",
                              forward=args.forward, pad_token_id=pad_token_id_of(tokenizer), lr_schedule="constant")
    module.train()
    collate = PreferenceCollator(pad_token_id_of(tokenizer))
    optimizer, scheduler = constant_adamw(module.named_parameters(), args.lr, len(schedule))
    parameters = [p for p in module.parameters() if p.requires_grad]
    manual_loop(schedule, lambda indices: collate([tokenized[i] for i in indices]),
                lambda batch: module.pair_loss(batch)[0], parameters, optimizer, scheduler, log)
    return {"forward": module.forward_mode}


# ---- (b) TRL ----


def trl_config(args: argparse.Namespace, output_dir: str, steps: int) -> Any:
    """``DPOConfig`` matching the other sides (field names checked against TRL 1.16 / transformers 5)."""
    from trl import DPOConfig

    return DPOConfig(
        output_dir=output_dir, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        max_steps=steps, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
        beta=args.beta, loss_type=["sigmoid"], max_length=args.max_length, precompute_ref_log_probs=False,
        gradient_checkpointing=False, bf16=False, fp16=False, use_cpu=True, disable_dropout=True,
        train_sampling_strategy="sequential", dataloader_num_workers=0, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=args.seed)


def run_trl(pairs: Sequence[Any], schedule: Sequence[Sequence[int]], args: argparse.Namespace,
            log: StepLog) -> dict[str, Any]:
    """TRL's DPOTrainer on the same pairs (module docstring); returns TRL's version."""
    import datasets
    import trl
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOTrainer

    from clarifylab.models.loading import lora_config

    spec = student_spec(args.student, args.lora_dropout)
    model, tokenizer = load_base(spec, args.cache_dir)
    datasets.disable_progress_bars()
    rows = [{"prompt": pairs[i].prompt, "chosen": pairs[i].chosen, "rejected": pairs[i].rejected}
            for indices in schedule for i in indices]  # the schedule, flattened: one epoch, read in order

    class RecordingDPOTrainer(DPOTrainer):
        """Keeps each compute_loss value (one micro-batch per optimizer step here)."""

        bench_losses: list[float] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                       num_items_in_batch=num_items_in_batch)
            self.bench_losses.append(float((out[0] if return_outputs else out).detach()))
            return out

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.start = 0.0

        def on_step_begin(self, *unused: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            log.record(time.perf_counter() - self.start, RecordingDPOTrainer.bench_losses[-1])

    with tempfile.TemporaryDirectory(prefix="bench-trl-") as output_dir:
        trainer = RecordingDPOTrainer(model=model, args=trl_config(args, output_dir, len(schedule)),
                                      train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer,
                                      peft_config=lora_config(spec.lora), callbacks=[StepTimer()])
        trainer.remove_callback(PrinterCallback)  # its per-step log dicts would bury the progress lines
        trainer.train()
    return {"trl": trl.__version__}


# ---- (c) floor ----


def cached_pair_logps(model: Any, tokenized: Any) -> tuple[Any, Any, int, int]:
    """Summed log-probs of both continuations of one pair, the prompt run once (KV cache).

    The prompt ``x[:P]`` runs as one row (``use_cache=True``, only its last logits kept: they predict the first
    reply token); the cache is repeated to two rows and ``[chosen reply; rejected reply]`` (right-padded to the
    longer, so padding never precedes a real token) continue from position ``P``. Log-probs use the project's
    ``sequence_logprobs`` on ``[last prompt logits | continuation logits]`` with the labels shifted by one.

    Returns:
        ``(chosen_logp, rejected_logp, chosen_tokens, rejected_tokens)``: two scalar float32 tensors (attached to
        the graph when grad is on) and the scored-token counts.
    """
    import torch

    from bench.pairs import prompt_length
    from clarifylab.training.chat_tokenize import IGNORE_INDEX
    from clarifylab.training.logprobs import sequence_logprobs

    prompt = prompt_length(tokenized)
    device = next(model.parameters()).device
    sides = [tokenized.chosen, tokenized.rejected]
    width = max(len(side["input_ids"]) - prompt for side in sides)
    ids = torch.tensor([side["input_ids"][prompt:] + [0] * (width + prompt - len(side["input_ids"]))
                        for side in sides], device=device)  # (2, W)
    labels = torch.tensor([[IGNORE_INDEX] + side["labels"][prompt:] + [IGNORE_INDEX] * (width + prompt
                                                                                         - len(side["input_ids"]))
                           for side in sides], device=device)  # (2, W + 1)
    head = model(input_ids=torch.tensor([sides[0]["input_ids"][:prompt]], device=device), use_cache=True,
                 logits_to_keep=1)
    cache = head.past_key_values
    cache.batch_repeat_interleave(2)
    tail = model(input_ids=ids, past_key_values=cache, use_cache=True).logits  # (2, W, V)
    logits = torch.cat([head.logits[:, -1:].expand(2, -1, -1), tail], dim=1)  # (2, W + 1, V)
    logps, counts = sequence_logprobs(logits, labels)
    return logps[0], logps[1], int(counts[0]), int(counts[1])


def floor_loss(model: Any, items: Sequence[Any], beta: float) -> Any:
    """DPO sigmoid loss (mean over the pairs) from :func:`cached_pair_logps`: the reference (adapters disabled,
    eval mode, no grad) first, then the policy with grad."""
    import torch

    from clarifylab.training.losses import preference_loss
    from clarifylab.training.preference_module import eval_mode

    with torch.no_grad(), eval_mode(model), model.disable_adapter():
        reference = [cached_pair_logps(model, item) for item in items]
    policy = [cached_pair_logps(model, item) for item in items]

    def column(rows: list[tuple[Any, ...]], index: int) -> Any:
        return torch.stack([row[index] for row in rows]) if index < 2 else torch.tensor(
            [float(row[index]) for row in rows])

    losses, _, _ = preference_loss(column(policy, 0), column(policy, 1), column(reference, 0), column(reference, 1),
                                   beta=beta, loss_type="sigmoid", chosen_lengths=column(policy, 2),
                                   rejected_lengths=column(policy, 3))
    return losses.mean()


def run_floor(pairs: Sequence[Any], schedule: Sequence[Sequence[int]], args: argparse.Namespace,
              log: StepLog) -> dict[str, Any]:
    """The floor step (module docstring)."""
    model, tokenizer = load_policy(student_spec(args.student, args.lora_dropout), args.cache_dir, args.seed)
    tokenized = tokenize_all(pairs, tokenizer, args.max_length)
    model.train()
    optimizer, scheduler = constant_adamw(model.named_parameters(), args.lr, len(schedule))
    parameters = [p for p in model.parameters() if p.requires_grad]
    manual_loop(schedule, lambda indices: [tokenized[i] for i in indices],
                lambda items: floor_loss(model, items, args.beta), parameters, optimizer, scheduler, log)
    return {}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"project": run_project, "trl": run_trl, "floor": run_floor}


# ---- entry point ----


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--pairs", required=True, help="JSONL of PreferencePair (written by run_preference.py)")
    parser.add_argument("--result", required=True, help="where to write this side's JSON result")
    parser.add_argument("--label", default=None, help="progress-line prefix (default: the side)")
    parser.add_argument("--student", choices=STUDENTS, default="smollm2")
    parser.add_argument("--cache-dir", default=str(ROOT / ".cache"), help="paths.cache_dir (converted SmolLM2)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=1152, help="tokens per side (prompt + reply)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--forward", choices=FORWARD_MODES, default="auto", help="project side only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def run_side(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.side`` and return its result record (also what ``main`` writes to ``--result``)."""
    check_side_dependencies(args.side)
    import torch

    from bench.pairs import step_schedule
    from clarifylab.training.preference_data import read_pairs

    if args.threads < 1:
        raise ConfigError(f"--threads={args.threads} must be >= 1")
    torch.set_num_threads(args.threads)
    pairs = read_pairs(args.pairs)
    schedule = step_schedule(len(pairs), args.batch_size, args.steps)
    log = StepLog(args.label or args.side, len(schedule))
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = RUNNERS[args.side](pairs, schedule, args, log)
    if len(log.seconds) != len(schedule):
        raise ClarifyLabError(f"side {args.side} ran {len(log.seconds)} of {len(schedule)} steps (a pair dropped?)")
    return {"side": args.side, **extra, "step_seconds": log.seconds, "losses": log.losses,
            "schedule": schedule, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "rss_at_start_kib": rss_start, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "ln2": math.log(2)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_side(args)
    except ClarifyLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from clarifylab.io import write_text

    write_text(args.result, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
