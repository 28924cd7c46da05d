"""STaR-GATE recipe (Andukuri et al., 2024): expert iteration that teaches a Questioner to elicit preferences.

``run_star_gate(cfg)`` (``train.py trainer=star-gate``) runs iterations t = 0 .. ``trainer.iterations`` - 1, each in
``<output_dir>/iter_<t>/``:

1. split = ``trainer.splits[t % len(splits)]`` (A when t is even, B when odd); its (persona, task) pairs with
   oracle answers (``dataset=stargate``);
2. simulate (``simulate.py``): m_t (t = 0: the base ``student`` = m0; else ``iter_<t-1>/policy``) asks, the
   persona Roleplayer (``trainer.roleplayer``, greedy) answers; ``trainer.num_conversations`` conversations per
   pair, K question turns drawn once per pair from 1..``trainer.max_turns``;
3. score every conversation by the summed log-prob of the oracle answer under m0 (``oracle_logprob.py``);
4. keep the top ``trainer.top_k`` per pair and build training examples with response regularization
   (``selection.py``: m_t's own greedy final answer, the oracle answer, or none);
5. SFT **from m0** on this split's examples only, assistant turns only, through
   :func:`clarifylab.training.sft_recipe.run_sft` (``trainer.*`` are its keys; the dataset split is the iteration's
   ``sft_examples.jsonl``), saving m_{t+1} to ``iter_<t>/policy``.

The SFT step also logs the iteration's conversations as a W&B table (``conversation_table.py``; first
``trainer.table_rows`` rows) and its selection numbers to the run's table-taking loggers.

Written per iteration: ``conversations.jsonl`` (every conversation, its score, whether selected), ``turns.json``,
``sft_examples.jsonl``, ``selection.json`` (the log-prob summary), ``sampling.json`` (settings), ``policy/`` and
``metrics.json``. A re-run (same run folder, ``reuse_run_dir=true``) skips an iteration with ``policy/`` and
``metrics.json`` and reuses simulated data whose ``sampling.json`` matches. The last policy is linked to
``<output_dir>/policy``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clarifylab.data.chat_format import instruction_for
from clarifylab.data.loaders.stargate import TASK
from clarifylab.errors import ConfigError
from clarifylab.io import write_json
from clarifylab.models.policy_io import link_final_policy
from clarifylab.training.lightning_setup import stage_loggers

log = logging.getLogger(__name__)

SEED_STRIDE = 1_000_000  # the Questioner's sampling seed at iteration t: cfg.seed + SEED_STRIDE * t (+ round)
QuestionerFactory = Callable[[Any, Any, int], Any]
"""``factory(model, tokenizer, iteration) -> ChatBackend`` wrapping m_t (tests plug scripted questioners in)."""


def iteration_dir(output_dir: str | os.PathLike[str], iteration: int) -> Path:
    return Path(output_dir) / f"iter_{iteration}"


def is_iteration_done(directory: Path) -> bool:
    return (directory / "policy").is_dir() and (directory / "metrics.json").is_file()


def iteration_split(splits: list[str], iteration: int) -> str:
    """The task split of iteration t: ``splits[t % len(splits)]`` (paper: A, B, A, ...)."""
    if not splits:
        raise ConfigError("trainer.splits is empty: give the task splits to alternate, e.g. [A, B]")
    return str(splits[iteration % len(splits)])


def sft_config(cfg: Any, iteration: int) -> Any:
    """The SFT sub-config of iteration t: ``output_dir = iter_<t>``, the dataset's train split = the iteration's
    ``sft_examples.jsonl`` (no validation split), ``resume = null``; the student stays ``cfg.student`` = m0, so each
    iteration trains from m0's weights. Loggers writing into the run folder move into ``iter_<t>``; a W&B logger
    gets one run per iteration (``<name>-iter<t>``, grouped under ``<name>``)."""
    directory = iteration_dir(cfg.output_dir, iteration)
    sub = OmegaConf.merge(cfg, {
        "output_dir": str(directory), "resume": None,
        "dataset": {"train_split": str(directory / "sft_examples.jsonl"), "val_split": None,
                    "max_train_examples": None},
        "trainer": {"name": f"{cfg.trainer.name}/iter_{iteration}"}})
    stage_loggers(sub, cfg.output_dir, directory, iteration, default_name=str(cfg.trainer.name))
    return sub


def sampling_settings(cfg: Any, iteration: int, split: str) -> dict[str, Any]:
    """What an iteration's simulated data depends on (``sampling.json``; reused only when equal)."""
    t, d = cfg.trainer, cfg.dataset
    keys = ("num_conversations", "max_turns", "top_k", "temperature", "top_p", "max_new_tokens",
            "answer_max_new_tokens", "regularization", "roleplayer_max_new_tokens")
    roleplayer = OmegaConf.to_container(t.roleplayer, resolve=True) if OmegaConf.is_config(t.roleplayer) \
        else t.roleplayer
    return json.loads(json.dumps({
        "seed": int(cfg.seed), "iteration": iteration, "split": split, **{k: t[k] for k in keys},
        "roleplayer": roleplayer, "student": OmegaConf.to_container(cfg.student, resolve=True),
        "dataset": {k: d[k] for k in ("name", "dir", "personas_dir", "oracle_dir", "max_tasks", "max_personas",
                                      "max_train_examples", "instruction")}}, default=str))


def _device(cfg: Any) -> str:
    import torch

    accelerator = str(cfg.hardware.accelerator)
    return "cuda" if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def load_m0(cfg: Any) -> tuple[Any, Any]:
    """The initial model m0 (``cfg.student`` without training), in eval mode on the sampling device."""
    from hydra.utils import instantiate

    from clarifylab.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(instantiate(cfg.student, _convert_="all"), cfg.paths.cache_dir)
    return model.to(_device(cfg)).eval(), tokenizer


def load_questioner(cfg: Any, policy_dir: str | None) -> tuple[Any, Any]:
    """m_t: the saved policy of the previous iteration (unmerged adapters), or m0 when ``policy_dir`` is None."""
    from clarifylab.models import load_policy

    if policy_dir is None:
        return load_m0(cfg)
    model, tokenizer, _ = load_policy(policy_dir, cfg.paths.cache_dir)
    return model.to(_device(cfg)).eval(), tokenizer


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def simulate_iteration(cfg: Any, iteration: int, split: str, examples: list[Any], policy_dir: str | None,
                       questioner_factory: QuestionerFactory | None = None,
                       roleplayer_backend: Any = None) -> dict[str, Any]:
    """Steps 2-4 of iteration t; writes ``conversations.jsonl``, ``turns.json``, ``sft_examples.jsonl`` and
    ``selection.json`` into ``iter_<t>``; returns the selection summary."""
    from rich.progress import Progress

    from clarifylab.backends.base import SamplingParams
    from clarifylab.backends.factory import build_backend
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.data.jsonl import write_examples, write_records
    from clarifylab.env.persona_roleplayer import PersonaRoleplayer
    from clarifylab.methods.star_gate.oracle_logprob import answer_context, score_oracle_logprobs
    from clarifylab.methods.star_gate.selection import score_summary, select_top_k, training_example, turn_counts
    from clarifylab.methods.star_gate.simulate import draw_turns, questioner_prompt, simulate_conversations

    t, directory = cfg.trainer, iteration_dir(cfg.output_dir, iteration)
    instruction = instruction_for(TASK, cfg.dataset.instruction)  # the system message SFT trains with
    turns = {e.id: draw_turns(e.id, int(cfg.seed), iteration, int(t.max_turns)) for e in examples}
    model, tokenizer = load_questioner(cfg, policy_dir)
    questioner = (questioner_factory(model, tokenizer, iteration) if questioner_factory is not None else
                  TransformersBackend(model, tokenizer, batch_size=int(t.sample_batch_size), progress=True))
    roleplayer = PersonaRoleplayer(roleplayer_backend if roleplayer_backend is not None else
                                   build_backend(t.roleplayer, cfg.paths.cache_dir),
                                   max_new_tokens=int(t.roleplayer_max_new_tokens))
    params = SamplingParams(max_new_tokens=int(t.max_new_tokens), temperature=float(t.temperature),
                            top_p=float(t.top_p), seed=int(cfg.seed) + SEED_STRIDE * iteration)
    conversations = simulate_conversations(examples, questioner, roleplayer, int(t.num_conversations), turns, params,
                                           instruction)
    by_id = {e.id: e for e in examples}
    m0, m0_tokenizer = (model, tokenizer) if policy_dir is None else load_m0(cfg)
    contexts = [answer_context(c.messages, by_id[c.pair_id].meta["task"]) for c in conversations]
    with Progress(transient=True) as bar:
        task = bar.add_task("scoring oracle answers under m0", total=len(contexts))
        scores = score_oracle_logprobs(m0, m0_tokenizer, contexts, [by_id[c.pair_id].response for c in conversations],
                                       batch_size=int(t.score_batch_size), max_length=t.score_max_length,
                                       progress=lambda n: bar.advance(task, n))
    for conversation, (score, n_tokens) in zip(conversations, scores):
        conversation.score, conversation.oracle_tokens = score, n_tokens
        pair = by_id[conversation.pair_id].meta
        conversation.meta = {"iteration": iteration, "split": split, "persona": pair["persona"], "task": pair["task"]}
    selected = select_top_k(conversations, int(t.top_k))
    finals: list[str | None] = [None] * len(selected)
    if t.regularization == "self":  # m_t's own greedy final answer after the selected conversation
        prompts = [questioner_prompt(instruction, answer_context(c.messages, by_id[c.pair_id].meta["task"]))
                   for c in selected]
        finals = list(questioner.complete(prompts, SamplingParams(max_new_tokens=int(t.answer_max_new_tokens))))
    sft_examples = [training_example(c, by_id[c.pair_id], str(t.regularization), final)
                    for c, final in zip(selected, finals)]
    directory.mkdir(parents=True, exist_ok=True)
    write_records(directory / "conversations.jsonl", (c.to_record() for c in conversations))
    write_json(directory / "turns.json", {"counts": turn_counts(turns), "by_pair": turns})
    write_examples(directory / "sft_examples.jsonl", sft_examples)
    summary = {**score_summary(conversations), "pairs": float(len(examples)), "iteration": iteration, "split": split}
    write_json(directory / "selection.json", summary)
    del model, m0, questioner, roleplayer
    _free()
    return summary


def conversation_table_callback(directory: Path, summary: dict[str, Any], max_rows: int) -> Any:
    """The callback that logs ``iter_<t>/conversations.jsonl`` (its first ``max_rows`` rows; ``trainer.table_rows``)
    and the selection summary to the iteration's table-taking loggers (``conversation_table.py``)."""
    from clarifylab.methods.star_gate.conversation_table import ConversationTableCallback, conversation_rows

    rows: list[list[Any]] = []
    if max_rows:
        with (directory / "conversations.jsonl").open(encoding="utf-8") as handle:
            records = [json.loads(line) for _, line in zip(range(max_rows), handle)]
        rows = conversation_rows(records, max_rows)
    return ConversationTableCallback(rows, summary)


def _finish_wandb_run() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def run_star_gate(cfg: Any, extra_callbacks: list[Any] | None = None,
                  questioner_factory: QuestionerFactory | None = None,
                  roleplayer_backend: Any = None) -> dict[str, float]:
    """Train with STaR-GATE (module docstring); return the last iteration's SFT metrics plus, per iteration t,
    ``star_gate/iter_<t>/<key>`` for the selection summary (``logprob_all``, ``logprob_selected``, ...).

    Args:
        cfg: the composed train config (``trainer=star-gate dataset=stargate``).
        extra_callbacks: Lightning callbacks added to every iteration's SFT trainer (tests).
        questioner_factory: how m_t is wrapped for sampling (default a :class:`TransformersBackend`).
        roleplayer_backend: a ready Roleplayer backend (tests); default built from ``trainer.roleplayer``.
    """
    from clarifylab.data.registry import load_dataset_split
    from clarifylab.training.sft_recipe import run_sft

    t = cfg.trainer
    iterations = int(t.iterations)
    if iterations < 1:
        raise ConfigError(f"trainer.iterations={iterations} must be >= 1")
    if float(t.temperature) <= 0:
        raise ConfigError(f"trainer.temperature={t.temperature}: the Questioner samples N conversations per pair")
    if int(t.table_rows) < 0:
        raise ConfigError(f"trainer.table_rows={t.table_rows} must be >= 0 (0 = no W&B conversation table)")
    if cfg.dataset.name != "stargate":
        raise ConfigError(f"trainer=star-gate needs dataset=stargate (persona-task pairs), got {cfg.dataset.name!r}")
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    policy_dir: str | None = None
    result: dict[str, float] = {}
    summaries: dict[int, dict[str, Any]] = {}
    for iteration in range(iterations):
        directory = iteration_dir(output_dir, iteration)
        split = iteration_split(list(t.splits), iteration)
        if is_iteration_done(directory):
            print(f"[star-gate] iteration {iteration}: done earlier ({directory}), skipped", flush=True)
            result = json.loads((directory / "metrics.json").read_text())
            summaries[iteration] = json.loads((directory / "selection.json").read_text())
            policy_dir = str(directory / "policy")
            continue
        settings = sampling_settings(cfg, iteration, split)
        saved = directory / "sampling.json"
        if saved.is_file() and (directory / "selection.json").is_file() and json.loads(saved.read_text()) == settings:
            print(f"[star-gate] iteration {iteration}: reusing simulated data in {directory}", flush=True)
            summaries[iteration] = json.loads((directory / "selection.json").read_text())
        else:
            saved.unlink(missing_ok=True)
            examples = load_dataset_split(cfg.dataset, split, cfg.paths, max_examples=cfg.dataset.max_train_examples)
            if not examples:
                raise ConfigError(f"dataset split {split!r} has no (persona, task) pairs")
            missing = [e.id for e in examples if not e.response]
            if missing:
                raise ConfigError(
                    f"split {split!r}: {len(missing)} of {len(examples)} pairs have no oracle answer (first: "
                    f"{missing[0]!r}); build them with `python generate.py task=stargate_oracle task.split={split}` "
                    "and pass dataset.oracle_dir=<its out_dir>")
            print(f"[star-gate] iteration {iteration}: split {split}, {len(examples)} pairs x "
                  f"{t.num_conversations} conversations, questioner = {policy_dir or 'm0'}", flush=True)
            summaries[iteration] = simulate_iteration(cfg, iteration, split, examples, policy_dir,
                                                      questioner_factory, roleplayer_backend)
            write_json(saved, settings)
        table = conversation_table_callback(directory, summaries[iteration], int(t.table_rows))
        try:
            result = run_sft(sft_config(cfg, iteration), extra_callbacks=[*(extra_callbacks or []), table])
        finally:
            _finish_wandb_run()
        write_json(directory / "metrics.json", result)
        policy_dir = str(directory / "policy")
        s = summaries[iteration]
        print(f"[star-gate] iteration {iteration}: mean oracle log-prob under m0 {s['logprob_all']:.2f} (all), "
              f"{s['logprob_selected']:.2f} (selected) -> {policy_dir}", flush=True)
    link_final_policy(output_dir, iteration_dir(output_dir, iterations - 1) / "policy")
    metrics = dict(result)
    for iteration, summary in summaries.items():
        metrics.update({f"star_gate/iter_{iteration}/{key}": float(value) for key, value in summary.items()
                        if isinstance(value, (int, float))})
    metrics["star_gate/iterations"] = float(iterations)
    return metrics
