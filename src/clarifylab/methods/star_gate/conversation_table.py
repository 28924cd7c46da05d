"""The W&B table of one STaR-GATE iteration's simulated conversations (``star_gate/conversations``).

Every iteration's SFT step runs with the loggers of ``cfg.logger`` (``training/lightning_setup.stage_loggers``: a
W&B logger gets one run per iteration, ``<name>-iter<t>``). :class:`ConversationTableCallback` is added to that
step's Lightning callbacks; when the fit starts it logs, to every logger that takes tables (``log_table``: the W&B
logger; the CSV logger does not), the conversations read back from ``iter_<t>/conversations.jsonl`` — persona, task,
turns, the conversation, the oracle answer's summed log-prob under m0 and whether it was selected — and the
iteration's selection summary (``selection.json``) as numbers ``star_gate/<key>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytorch_lightning import Callback

TABLE_KEY = "star_gate/conversations"
TABLE_COLUMNS = ["iteration", "split", "pair_id", "persona", "task", "branch", "turns", "conversation",
                 "oracle_logprob", "oracle_tokens", "selected"]


def conversation_text(messages: Sequence[Mapping[str, str]]) -> str:
    """``role: content`` lines of a conversation (the Questioner's view: user = the persona's side)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def conversation_rows(records: Sequence[Mapping[str, Any]], max_rows: int) -> list[list[Any]]:
    """The first ``max_rows`` records of ``conversations.jsonl`` (pair-major, so whole pairs come first) as rows in
    :data:`TABLE_COLUMNS` order. ``persona``/``task`` are empty for records written before they were recorded."""
    return [[r["iteration"], r["split"], r["pair_id"], r.get("persona", ""), r.get("task", ""), r["branch"],
             r["turns"], conversation_text(r["messages"]), r["score"], r["oracle_tokens"], bool(r["selected"])]
            for r in records[:max_rows]]


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``selection.json`` summary as ``star_gate/<key>`` (``iteration`` and text left out)."""
    return {f"star_gate/{key}": float(value) for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "iteration"}


class ConversationTableCallback(Callback):
    """Log one iteration's conversation table (and its selection numbers) to the table-taking loggers at fit start.

    Args:
        rows: :func:`conversation_rows` of the iteration.
        summary: the iteration's ``selection.json`` (logged as :func:`summary_metrics` at step 0).
    """

    def __init__(self, rows: list[list[Any]], summary: Mapping[str, Any]):
        self.rows = rows
        self.summary = dict(summary)
        self.logged_to: list[str] = []

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if not hasattr(logger, "log_table"):
                continue
            logger.log_metrics(summary_metrics(self.summary), step=0)
            if self.rows:
                logger.log_table(TABLE_KEY, columns=TABLE_COLUMNS, data=self.rows)
            self.logged_to.append(type(logger).__name__)
