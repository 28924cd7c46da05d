"""Win-rate arithmetic of STaR-GATE's evaluation (Andukuri et al., 2024, §4): a judge picks the better of two answers
(m_t's and m0's) for the same (persona, task) pair; no tie option; unparsable verdicts are dropped and counted.

Two protocols over the same verdicts:

- **single order** (the paper): each item is shown once, m_t's answer in position A for a seeded half of the items
  (:func:`randomized_positions`: a balanced randomization, so a judge that always names one position scores exactly
  0.5 on an even number of items); score 1 when the judge names m_t's position, else 0;
- **both orders**: each item is judged with m_t first and with m_t second. ``win`` = m_t chosen in both, ``loss`` =
  m0 chosen in both, ``flip`` = the verdict follows the position (the same letter both times: the judge's position
  bias decided it); score 1 / 0 / 0.5. A win counts only when it survives the swap.

Win rate = the mean score over the kept items; the 95 % interval is a seeded percentile bootstrap over items.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

BOTH_ORDER_SCORES = {"win": 1.0, "loss": 0.0, "flip": 0.5}


def parse_verdict(text: str) -> str | None:
    """``"A"`` / ``"B"`` from a judge reply, or None (unparsable): a reply that is one letter, an explicit ``Answer: X`` / ``Response X`` wins,
    else the reply must name exactly one of the two letters as a standalone token."""
    bare = re.sub(r"[^A-Za-z]", "", text)
    if bare.upper() in ("A", "B"):  # the whole reply is one letter, any case
        return bare.upper()
    explicit = re.findall(r"(?:answer|response|verdict|choice|better)\s*(?:is)?\s*[:\-]?\s*\(?\b([AB])\b\)?", text,
                          flags=re.IGNORECASE)
    letters = {m.upper() for m in explicit} if explicit else set(re.findall(r"\b([AB])\b", text))
    return letters.pop() if len(letters) == 1 else None


def randomized_positions(n: int, seed: int) -> list[bool]:
    """Per item, whether m_t's answer is shown as A: a seeded permutation puts m_t first for ``n // 2`` items."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    first = set(order[: n // 2].tolist())
    return [i in first for i in range(n)]


def single_order_score(verdict: str | None, model_is_a: bool) -> float | None:
    """1.0 when the judge names m_t's position, 0.0 when it names m0's, None when unparsable."""
    if verdict is None:
        return None
    return float((verdict == "A") == model_is_a)


def both_order_outcome(model_first: str | None, model_second: str | None) -> str | None:
    """``win`` / ``loss`` / ``flip`` from the verdicts with m_t in position A and in position B; None if either is
    unparsable (the item is dropped)."""
    if model_first is None or model_second is None:
        return None
    if model_first == "A" and model_second == "B":
        return "win"
    if model_first == "B" and model_second == "A":
        return "loss"
    return "flip"


def bootstrap_ci(scores: Sequence[float], samples: int = 10_000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``samples`` resamples of the items with replacement
    (``numpy.random.default_rng(seed).integers(0, n, (samples, n))``); ``(nan, nan)`` without items."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    index = np.random.default_rng(seed).integers(0, values.size, size=(samples, values.size))
    means = values[index].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarize(scores: Sequence[float | None], samples: int = 10_000, seed: int = 0,
              level: float = 0.95) -> dict[str, float]:
    """``win_rate``, ``ci_low``, ``ci_high``, ``n`` (kept items) and ``dropped`` (unparsable) of per-item scores."""
    kept = [s for s in scores if s is not None]
    low, high = bootstrap_ci(kept, samples, seed, level)
    return {"win_rate": float(sum(kept) / len(kept)) if kept else float("nan"), "ci_low": low, "ci_high": high,
            "n": float(len(kept)), "dropped": float(len(scores) - len(kept))}


def win_rates(items: Sequence[dict[str, Any]], samples: int = 10_000, seed: int = 0,
              level: float = 0.95) -> dict[str, Any]:
    """Both protocols over judged items, overall and per number of question turns.

    Args:
        items: per pair ``{"turns": K, "model_is_a": bool, "verdict_model_first": "A"|"B"|None,
            "verdict_model_second": ...}``; the single-order verdict is the one of the order ``model_is_a`` shows.

    Returns:
        ``{"single": summary, "both": summary + counts of win/loss/flip, "by_turns": {K: {"single", "both"}}}``.
    """
    def compute(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        single = [single_order_score(i["verdict_model_first"] if i["model_is_a"] else i["verdict_model_second"],
                                     i["model_is_a"]) for i in group]
        outcomes = [both_order_outcome(i["verdict_model_first"], i["verdict_model_second"]) for i in group]
        both = summarize([None if o is None else BOTH_ORDER_SCORES[o] for o in outcomes], samples, seed, level)
        both.update({kind: float(outcomes.count(kind)) for kind in ("win", "loss", "flip")})
        both["strict_win_rate"] = both["win"] / both["n"] if both["n"] else float("nan")
        return {"single": summarize(single, samples, seed, level), "both": both}

    result = compute(items)
    result["by_turns"] = {str(k): compute([i for i in items if i["turns"] == k])
                          for k in sorted({i["turns"] for i in items})}
    return result
