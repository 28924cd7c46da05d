"""The SFT DataModule: Examples -> gold conversations -> masked token ids -> padded batches.

Conversations are tokenized once, in ``setup``, never per step. The training order is a pure
function of ``(seed, epoch)`` (:class:`ResumableSampler`), and the DataModule's state (which
epoch, how many of its batches were consumed) goes into every Lightning checkpoint, so
``trainer.fit(ckpt_path=...)`` from a mid-epoch checkpoint continues with exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from clarifylab.data.chat_format import trajectory_messages
from clarifylab.data.schema import Example
from clarifylab.errors import ConfigError
from clarifylab.training.chat_tokenize import tokenize_conversations
from clarifylab.training.collate import RightPadCollator
from clarifylab.training.resumable_sampler import ResumableSampler


class TokenizedConversations(Dataset):
    """A list of tokenized conversations (``{"input_ids", "attention_mask", "labels"}`` lists)."""

    def __init__(self, features: list[dict[str, list[int]]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.features[index]


def example_conversations(examples: Sequence[Example], instruction: str | None = None) -> list[list[dict[str, str]]]:
    """The gold conversation of each Example (system prompt, history, gold assistant turns)."""
    return [trajectory_messages(example, instruction) for example in examples]


def tokenize_examples(examples: Sequence[Example], tokenizer: Any, max_length: int, loss_on: str, truncation: str,
                      instruction: str | None = None, end_of_turn: str | None = None,
                      what: str = "conversations") -> list[dict[str, list[int]]]:
    """Tokenize the gold conversations of ``examples`` with the assistant-only loss mask."""
    return tokenize_conversations(
        example_conversations(examples, instruction), tokenizer, max_length, loss_on=loss_on,
        truncation=truncation, end_of_turn=end_of_turn, names=[example.id for example in examples], what=what)


class SFTDataModule(pl.LightningDataModule):
    """Training and validation batches of gold conversations for SFT.

    Args:
        train_examples, val_examples: the Examples (``val_examples`` may be empty: no validation).
        tokenizer: a fast HF tokenizer with a chat template.
        batch_size: training micro-batch size per device.
        eval_batch_size: validation batch size.
        max_length: maximum tokens per conversation.
        loss_on: ``all_assistant`` | ``last_assistant``.
        instruction: system-instruction override (``dataset.instruction``); ``None`` = the task's own.
        seed: seed of the per-epoch shuffling.
        num_workers: DataLoader worker processes.
        truncation: ``drop`` | ``error`` for conversations longer than ``max_length``.
        end_of_turn: end-of-turn text of the chat template (``None`` = detect).

    Batches are dicts of int64 tensors ``input_ids``, ``attention_mask``, ``labels`` of shape
    ``(batch, length)``, right-padded (see :class:`RightPadCollator`).
    """

    def __init__(self, train_examples: Sequence[Example], val_examples: Sequence[Example], tokenizer: Any,
                 batch_size: int, eval_batch_size: int, max_length: int, loss_on: str = "all_assistant",
                 instruction: str | None = None, seed: int = 0, num_workers: int = 0,
                 truncation: str = "drop", end_of_turn: str | None = None) -> None:
        super().__init__()
        if not train_examples:
            raise ConfigError("no training examples: check dataset.train_split / dataset.max_train_examples")
        for option, value in (("trainer.batch_size", batch_size), ("trainer.eval_batch_size", eval_batch_size),
                              ("trainer.max_length", max_length)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{option}={value!r} must be a positive integer")
        self.train_examples = list(train_examples)
        self.val_examples = list(val_examples)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_length = max_length
        self.loss_on = loss_on
        self.instruction = instruction
        self.seed = seed
        self.num_workers = num_workers
        self.truncation = truncation
        self.end_of_turn = end_of_turn
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.collator = RightPadCollator(pad_id)
        self.train_set: TokenizedConversations | None = None
        self.val_set: TokenizedConversations | None = None
        self.train_sampler: ResumableSampler | None = None
        self._resume_position: tuple[int, int] | None = None  # (epoch, batches consumed) from a checkpoint
        self._resume_state: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        """Tokenize once (later calls are no-ops)."""
        if self.train_set is None:
            self.train_set = TokenizedConversations(self._tokenize(self.train_examples, "training conversations"))
        if self.val_set is None:
            self.val_set = TokenizedConversations(
                self._tokenize(self.val_examples, "validation conversations") if self.val_examples else [])

    def _tokenize(self, examples: Sequence[Example], what: str) -> list[dict[str, list[int]]]:
        return tokenize_examples(examples, self.tokenizer, self.max_length, self.loss_on, self.truncation,
                                 self.instruction, self.end_of_turn, what=what)

    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def make_train_sampler(self) -> ResumableSampler:
        """The training sampler, positioned at the resume point when a checkpoint was loaded."""
        self.setup()
        rank, world_size = self._rank_and_world_size()
        sampler = ResumableSampler(len(self.train_set), shuffle=True, seed=self.seed, rank=rank, world_size=world_size)
        if self._resume_position is not None:
            self._check_same_data(sampler)
            epoch, consumed = self._resume_position
            if consumed * self.batch_size >= len(sampler):  # saved at an epoch end: the next starts afresh
                epoch, consumed = epoch + 1, 0
            sampler.resume_at(epoch, skip=consumed * self.batch_size)
            self._resume_position = None  # one-shot
        return sampler

    def _order_settings(self, sampler: ResumableSampler) -> dict[str, Any]:
        return {**sampler.order_settings(), "batch_size": self.batch_size}

    def _check_same_data(self, sampler: ResumableSampler) -> None:
        saved = self._resume_state or {}
        now = self._order_settings(sampler)
        different = [f"{key}: {saved.get(key)} -> {value}" for key, value in now.items() if saved.get(key) != value]
        if different:
            raise ConfigError(
                f"the checkpoint in `resume` was trained with other data-order settings ({', '.join(different)}); "
                "resuming would not reproduce the batches: use the same dataset, seed, trainer.batch_size and devices")

    def _loader(self, dataset: Dataset, sampler: ResumableSampler, batch_size: int) -> DataLoader:
        # A private generator: creating the loader's iterator draws a base seed from it instead of
        # from the global torch RNG, so validation and resuming never shift training's dropout stream.
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        return DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last=False),
                          collate_fn=self.collator, num_workers=self.num_workers, generator=generator)

    def train_dataloader(self) -> DataLoader:
        self.train_sampler = self.make_train_sampler()
        return self._loader(self.train_set, self.train_sampler, self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        if not len(self.val_set):
            return []
        rank, world_size = self._rank_and_world_size()
        sampler = ResumableSampler(len(self.val_set), shuffle=False, rank=rank, world_size=world_size)
        return self._loader(self.val_set, sampler, self.eval_batch_size)

    # ---- checkpoint state (Lightning calls these when saving / restoring a checkpoint) ----

    def state_dict(self) -> dict[str, Any]:
        """The data position: ``epoch`` and ``batches_consumed`` (micro-batches whose training step ran)
        plus the settings that fix the batch order. Empty outside ``fit``."""
        trainer = self.trainer
        if trainer is None or self.train_sampler is None:
            return {}
        state = self._order_settings(self.train_sampler)
        if trainer.current_epoch > self.train_sampler.epoch:
            # Lightning closed the sampler's epoch early (max_steps or should_stop, then a save after
            # fit): a resumed run starts the next epoch, so its data does too.
            state.update(epoch=trainer.current_epoch, batches_consumed=0)
        else:
            state.update(epoch=self.train_sampler.epoch,
                         batches_consumed=trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Position the next training dataloader at the checkpoint's data position."""
        if "epoch" in state_dict:
            self._resume_position = (int(state_dict["epoch"]), int(state_dict["batches_consumed"]))
            self._resume_state = dict(state_dict)
