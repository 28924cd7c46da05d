"""STaR-GATE's conversation score (Andukuri et al., 2024, §3, Eq. 1): the summed log-probability of the oracle
response under the initial model m0,

    score(s_ij) = log p_m0(g_ij | t_i, s_ij) = sum_k log p_m0(g_k | context, g_<k),

with context = the user's first turn ("My name is {name}." + task), the simulated conversation, and the task repeated
after the last Roleplayer answer (:func:`answer_context`); no persona and no questioner instruction. Only the oracle's
tokens are scored: the context is rendered with the chat template and its generation prompt, the oracle text is
tokenized on its own and appended, and labels are ``IGNORE_INDEX`` everywhere else (pad positions included). The
official code pads with EOS and counts pad positions, and hides scoring errors behind a bare ``except``; here every
row must score exactly its oracle tokens or the call raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clarifylab.backends.base import Message
from clarifylab.errors import DataFormatError
from clarifylab.training.chat_tokenize import IGNORE_INDEX, render_conversation


def answer_context(conversation: Sequence[Message], task: str) -> list[Message]:
    """The conversation with the task repeated after the last Roleplayer answer (merged into that user turn, so
    templates that require alternating roles accept it): the context of the final answer and of the score.

    Args:
        conversation: questioner's view ``[user, assistant, user, ..., user]`` (ends with a user turn).
        task: the bare task text.
    """
    if not conversation or conversation[-1]["role"] != "user":
        raise DataFormatError("a STaR-GATE conversation must end with the Roleplayer's (user) answer")
    last = conversation[-1]
    return [dict(m) for m in conversation[:-1]] + [{"role": "user", "content": f"{last['content']}\n\n{task}"}]


def oracle_features(context: Sequence[Message], oracle: str, tokenizer: Any) -> dict[str, list[int]]:
    """Token ids and labels of ``context`` (+ generation prompt) followed by the oracle tokens.

    Returns:
        ``{"input_ids", "labels"}`` of equal length; ``labels`` is the oracle's ids on its positions and
        ``IGNORE_INDEX`` on the context.

    Raises:
        DataFormatError: an empty oracle answer (nothing to score).
    """
    oracle_ids = tokenizer(oracle, add_special_tokens=False)["input_ids"]
    if not oracle.strip() or not oracle_ids:
        raise DataFormatError("empty oracle answer: nothing to score (build oracle answers with "
                              "`python generate.py task=stargate_oracle`)")
    prompt = render_conversation(context, tokenizer, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return {"input_ids": list(prompt_ids) + list(oracle_ids),
            "labels": [IGNORE_INDEX] * len(prompt_ids) + list(oracle_ids)}


def score_oracle_logprobs(model: Any, tokenizer: Any, contexts: Sequence[Sequence[Message]], oracles: Sequence[str],
                          batch_size: int = 8, max_length: int | None = None,
                          progress: Any = None) -> list[tuple[float, int]]:
    """Summed log p_m0(oracle | context) per row (module docstring), in input order.

    Rows are sorted by length and right-padded per batch (``attention_mask`` 0, labels ``IGNORE_INDEX`` on pads).

    Args:
        model: m0, a causal LM; called under ``torch.inference_mode`` in eval mode.
        contexts, oracles: one context (from :func:`answer_context`) and one oracle answer per row.
        batch_size: rows per forward.
        max_length: refuse (raise) a row longer than this many tokens; None = no bound.
        progress: optional ``advance(n)`` callable (a progress bar).

    Returns:
        ``[(summed log-prob in nats, number of oracle tokens scored), ...]``.

    Raises:
        DataFormatError: an empty oracle; a row longer than ``max_length``; a row whose scored-token count differs
            from its oracle token count (the scoring would be wrong: it never passes silently).
    """
    import torch

    from clarifylab.backends.transformers_backend import inference_mode_for
    from clarifylab.training.logprobs import sequence_logprobs

    if len(contexts) != len(oracles):
        raise ValueError(f"{len(contexts)} contexts but {len(oracles)} oracle answers")
    features = [oracle_features(c, o, tokenizer) for c, o in zip(contexts, oracles)]
    for index, feature in enumerate(features):
        if max_length is not None and len(feature["input_ids"]) > max_length:
            raise DataFormatError(f"scoring row {index} has {len(feature['input_ids'])} tokens > score_max_length="
                                  f"{max_length}: raise trainer.score_max_length")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(features)
    with inference_mode_for(model):
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            length = max(len(features[i]["input_ids"]) for i in rows)
            ids = torch.full((len(rows), length), int(pad_id), dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
            for r, i in enumerate(rows):
                n = len(features[i]["input_ids"])
                ids[r, :n] = torch.tensor(features[i]["input_ids"])
                mask[r, :n] = 1
                labels[r, :n] = torch.tensor(features[i]["labels"])
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            logps, counts = sequence_logprobs(logits, labels.to(device))
            for r, i in enumerate(rows):
                expected = sum(label != IGNORE_INDEX for label in features[i]["labels"])
                if int(counts[r]) != expected:
                    raise DataFormatError(f"scoring row {i}: {int(counts[r])} tokens scored, {expected} oracle tokens")
                results[i] = (float(logps[r]), expected)
            if progress is not None:
                progress(len(rows))
    return results
