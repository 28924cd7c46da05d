"""A local Hugging Face causal LM behind the :class:`~clarifylab.backends.base.ChatBackend` interface.

Batched, left-padded ``model.generate`` with the KV cache; stops at the end-of-turn token. Safe to
call from inside training (sample tables, on-policy sampling): it switches the model to eval mode and
no-grad for the call and restores the previous mode afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.progress import Progress

from clarifylab.backends.base import Message, SamplingParams
from clarifylab.errors import ConfigError

logger = logging.getLogger(__name__)

# End-of-turn markers of common chat templates (ChatML, Llama 3, Gemma, Mistral/Zephyr); those present
# in the tokenizer's vocabulary stop generation in addition to the tokenizer's own EOS.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "</s>", "<|endoftext|>")


def end_of_turn_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS, the model's generation-config EOS
    (int or list) and every known end-of-turn marker present in the vocabulary. Sorted, unique."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    generation_config = getattr(model, "generation_config", None)
    config_eos = getattr(generation_config, "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif config_eos is not None:
        ids.update(int(i) for i in config_eos)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return sorted(ids)


def completion_lengths(new_tokens: Any, stop_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Where each generated row ends.

    Args:
        new_tokens: ``(batch, steps)`` int tensor of generated ids (rows that stopped early are padded,
            possibly with a stop id, since pad often equals EOS).
        stop_ids: end-of-turn ids.

    Returns:
        ``(text_lengths, token_counts)``: per row, the number of tokens before the first stop id (the
        reply text) and the number of tokens generated (text plus the stop token when there is one).
    """
    import torch

    is_stop = torch.isin(new_tokens, torch.tensor(list(stop_ids), dtype=new_tokens.dtype))
    has_stop = is_stop.any(dim=1)
    first_stop = torch.where(has_stop, is_stop.long().argmax(dim=1), new_tokens.shape[1])  # (batch,)
    return first_stop.tolist(), (first_stop + has_stop.long()).tolist()


@contextmanager
def inference_mode_for(model: Any) -> Iterator[None]:
    """Eval mode + ``torch.inference_mode`` for the block; restores train mode if it was on."""
    import torch

    was_training = bool(model.training)
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if was_training:
            model.train()


@contextmanager
def left_padding(tokenizer: Any) -> Iterator[None]:
    """Pad on the left for the block (decoder-only generation), then restore the tokenizer's side."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = previous


@contextmanager
def seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Seed torch's RNG for the block without disturbing the caller's RNG state (no-op for None)."""
    import torch

    if seed is None:
        yield
        return
    devices = [device.index or 0] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class TransformersBackend:
    """Generate chat replies with a local (optionally peft-wrapped) transformers model.

    Args:
        model: a causal LM (``AutoModelForCausalLM`` or a ``peft.PeftModel`` around one).
        tokenizer: its tokenizer; must have a chat template.
        batch_size: conversations per ``generate`` call (prompts are sorted by length to limit padding).
        progress: show a rich progress bar over conversations.
        model_id: identifier for logs and cache keys (default: ``config._name_or_path``).

    Attributes:
        usage: running totals ``prompt_tokens``, ``completion_tokens`` (generated tokens up to and
            including the end-of-turn token), ``conversations`` and ``calls``.
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, progress: bool = False,
                 model_id: str | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"TransformersBackend batch_size must be >= 1, got {batch_size}")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"tokenizer of {model_id or type(model).__name__} has no chat template; use an instruct/chat "
                "model or set tokenizer.chat_template before building the backend")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        config = getattr(model, "config", None)
        self.model_id = model_id or getattr(config, "_name_or_path", "") or type(model).__name__
        self.stop_ids = end_of_turn_ids(tokenizer, model)
        if not self.stop_ids:
            raise ConfigError(f"tokenizer of {self.model_id} defines no EOS/end-of-turn token; cannot stop generation")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "conversations": 0, "calls": 0}

    def render(self, conversation: list[Message]) -> str:
        """The prompt text: the chat template applied with the assistant generation prompt."""
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """One reply per conversation, in input order (see :class:`ChatBackend`)."""
        if not batch:
            return []
        prompts = [self.render(list(conversation)) for conversation in batch]
        # Longest first: similar lengths share a chunk (less padding) and an out-of-memory shows up at once.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        replies: list[str] = [""] * len(prompts)
        started = time.perf_counter()
        generated_before = self.usage["completion_tokens"]
        with self._progress_bar(len(prompts)) as advance:
            for chunk_index, start in enumerate(range(0, len(order), self.batch_size)):
                indices = order[start:start + self.batch_size]
                seed = None if params.seed is None else params.seed + chunk_index
                texts = self._generate([prompts[i] for i in indices], params, seed)
                for i, text in zip(indices, texts):
                    replies[i] = text
                advance(len(indices))
        elapsed = max(time.perf_counter() - started, 1e-9)
        generated = self.usage["completion_tokens"] - generated_before
        self.usage["conversations"] += len(prompts)
        self.usage["calls"] += 1
        logger.debug("%s: %d replies, %d new tokens in %.2f s (%.1f tokens/s)",
                     self.model_id, len(prompts), generated, elapsed, generated / elapsed)
        return replies

    def _generate(self, prompts: list[str], params: SamplingParams, seed: int | None) -> list[str]:
        """Generate for one chunk of rendered prompts; returns the stripped new text per prompt."""
        from transformers import GenerationConfig

        device = self._device()
        with left_padding(self.tokenizer):
            encoded = self.tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        encoded = {key: value.to(device) for key, value in encoded.items() if key in ("input_ids", "attention_mask")}
        sampling = {} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p}
        generation_config = GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=not params.greedy, eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id, use_cache=True, **sampling)
        with inference_mode_for(self.model), seeded(seed, device):
            output = self.model.generate(**encoded, generation_config=generation_config)
        new_tokens = output[:, encoded["input_ids"].shape[1]:].cpu()  # (batch, <= max_new_tokens)
        text_lengths, token_counts = completion_lengths(new_tokens, self.stop_ids)
        self.usage["prompt_tokens"] += int(encoded["attention_mask"].sum())
        self.usage["completion_tokens"] += sum(token_counts)
        return [self.tokenizer.decode(row[:end].tolist(), skip_special_tokens=True).strip()
                for row, end in zip(new_tokens, text_lengths)]

    def _device(self) -> Any:
        import torch

        device = getattr(self.model, "device", None)
        if isinstance(device, torch.device):
            return device
        return next(self.model.parameters()).device

    @contextmanager
    def _progress_bar(self, total: int) -> Iterator[Any]:
        """Yield ``advance(n)``; a rich progress bar over conversations when ``progress`` is on."""
        if not self.progress:
            yield lambda n: None
            return
        with Progress(transient=True) as bar:
            task = bar.add_task(f"generating ({self.model_id})", total=total)
            yield lambda n: bar.advance(task, n)
