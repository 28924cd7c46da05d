"""A local Hugging Face causal LM behind the :class:`~clarifylab.backends.base.ChatBackend` interface.

Continuous batching over ``model.generate`` with the KV cache (:mod:`clarifylab.backends.decode_pool`): at most
``batch_size`` left-padded rows decode together, each stopping at its end-of-turn token, and a finished row's place
goes to the next prompt. Prompts that share prefixes (the turns of one dialogue, a rollout's rounds) are prefilled
once along their prefix tree (:mod:`clarifylab.backends.shared_prefill`). Safe to call from inside training
(sample tables, on-policy sampling): it switches the model to eval mode and no-grad for the call and restores the
previous mode afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.progress import Progress

from clarifylab.backends.base import Message, SamplingParams
from clarifylab.backends.decode_pool import chunked_generate, poolable_cache, pooled_generate
from clarifylab.backends.shared_prefill import lexicographic_order, worth_sharing
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
        batch_size: rows decoded together (the pool's size).
        progress: show a rich progress bar over conversations.
        model_id: identifier for logs and cache keys (default: ``config._name_or_path``).
        share_prefixes: when a call's prompts, in lexicographic token order, reuse enough of each other
            (:func:`~clarifylab.backends.shared_prefill.worth_sharing`), they enter the pool in that order with
            caches computed along their prefix tree; otherwise longest first, through one padded forward per
            refill. A model whose cache is not plain full-attention layers (sliding-window, recurrent) gets
            neither the pool nor the sharing (logged once): one padded ``generate`` per chunk of ``batch_size``.

    Attributes:
        usage: running totals ``prompt_tokens``, ``prefill_tokens`` (prompt tokens that ran through the model:
            fewer than ``prompt_tokens`` when prefixes were shared), ``completion_tokens`` (generated tokens up to
            and including the end-of-turn token), ``conversations`` and ``calls``.
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, progress: bool = False,
                 model_id: str | None = None, share_prefixes: bool = True) -> None:
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
        self.pooled = self._cache_can_be_pooled()
        self.share_prefixes = share_prefixes and self.pooled
        self.usage: dict[str, int] = {"prompt_tokens": 0, "prefill_tokens": 0, "completion_tokens": 0,
                                      "conversations": 0, "calls": 0}

    def _cache_can_be_pooled(self) -> bool:
        if poolable_cache(self.model):
            return True
        logger.info("%s: continuous batching and shared-prefix prefill off (its cache is not plain full-attention "
                    "layers); one padded generate per chunk of %d", self.model_id, self.batch_size)
        return False

    def render(self, conversation: list[Message]) -> str:
        """The prompt text: the chat template applied with the assistant generation prompt."""
        return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def complete(self, batch: Sequence[list[Message]], params: SamplingParams) -> list[str]:
        """One reply per conversation, in input order (see :class:`ChatBackend`)."""
        from transformers import GenerationConfig

        if not batch:
            return []
        rows = self.tokenizer([self.render(list(c)) for c in batch], add_special_tokens=False)["input_ids"]
        order = lexicographic_order(rows)
        shared = self.share_prefixes and worth_sharing([rows[i] for i in order])
        if not shared:
            # Longest first: similar lengths enter the pool together (less padding); an out-of-memory shows at once.
            order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        sampling = {} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p}
        generation_config = GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=not params.greedy, eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id, use_cache=True, **sampling)
        started = time.perf_counter()
        with self._progress_bar(len(rows)) as advance, inference_mode_for(self.model), \
                seeded(params.seed, self._device()):
            ordered = [rows[i] for i in order]
            if self.pooled and min(len(row) for row in rows) >= 2:  # a pooled row caches all but its last token
                produced, prefilled = pooled_generate(self.model, ordered, generation_config, self.stop_ids,
                                                      self.pad_id, self.batch_size, shared, advance)
            else:
                produced, prefilled = chunked_generate(self.model, ordered, generation_config, self.stop_ids,
                                                       self.pad_id, self.batch_size, advance)
        replies: list[str] = [""] * len(rows)
        stops = set(self.stop_ids)
        for i, tokens in zip(order, produced):  # a row's tokens end at its stop token, if it emitted one
            text = tokens[:-1] if tokens and tokens[-1] in stops else tokens
            replies[i] = self.tokenizer.decode(text, skip_special_tokens=True).strip()
        generated = sum(len(tokens) for tokens in produced)
        self.usage["prompt_tokens"] += sum(len(row) for row in rows)
        self.usage["prefill_tokens"] += prefilled
        self.usage["completion_tokens"] += generated
        self.usage["conversations"] += len(rows)
        self.usage["calls"] += 1
        elapsed = max(time.perf_counter() - started, 1e-9)
        logger.debug("%s: %d replies, %d new tokens in %.2f s (%.1f tokens/s)",
                     self.model_id, len(rows), generated, elapsed, generated / elapsed)
        return replies

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
