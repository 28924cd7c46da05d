"""A callback that shows what the policy says: at each validation end it generates greedy replies to
a few fixed validation prompts, writes them to ``<output_dir>/samples/step_<n>.jsonl`` and logs them
as a table to W&B when a ``WandbLogger`` is attached."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from clarifylab.backends.base import SamplingParams
from clarifylab.backends.transformers_backend import TransformersBackend
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.schema import Example
from clarifylab.io import atomic_open

log = logging.getLogger(__name__)

COLUMNS = ["step", "id", "gold_action", "prompt", "gold_response", "generated"]


class SampleGenerationsCallback(pl.Callback):
    """Greedy generations for ``examples`` at every validation end (not during the sanity check).

    Args:
        examples: the validation Examples to answer (a handful).
        tokenizer: the policy's tokenizer.
        out_dir: directory of the ``step_<n>.jsonl`` files.
        instruction: system-instruction override (as for training).
        max_new_tokens: generation budget per reply.
        batch_size: prompts per ``generate`` call.

    Generation runs on global rank 0 only, in eval mode and no-grad, inside a forked RNG so the
    training random stream is untouched (a resumed run stays identical to an uninterrupted one).
    """

    def __init__(self, examples: Sequence[Example], tokenizer: Any, out_dir: str | Path,
                 instruction: str | None = None, max_new_tokens: int = 64, batch_size: int = 8) -> None:
        super().__init__()
        self.examples = list(examples)
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir)
        self.instruction = instruction
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.last_rows: list[dict[str, Any]] = []

    def rows(self, model: Any, step: int) -> list[dict[str, Any]]:
        """One record per example: its prompt (last user message), gold response and the generation."""
        backend = TransformersBackend(model, self.tokenizer, batch_size=self.batch_size)
        conversations = [prompt_messages(example, self.instruction) for example in self.examples]
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            replies = backend.complete(conversations, SamplingParams(max_new_tokens=self.max_new_tokens))
        return [{"step": step, "id": example.id, "gold_action": example.action.value,
                 "prompt": example.history[-1].content, "gold_response": example.response, "generated": reply}
                for example, reply in zip(self.examples, replies)]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.examples or not trainer.is_global_zero:
            return
        step = trainer.global_step
        rows = self.rows(pl_module.model, step)
        self.last_rows = rows
        path = self.out_dir / f"step_{step}.jsonl"
        with atomic_open(path) as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key="samples/generations", columns=COLUMNS,
                                 data=[[row[column] for column in COLUMNS] for row in rows], step=step)
        log.info("wrote %d sample generations to %s", len(rows), path)
