"""Scripted chat backends and tiny problem sets for the SML tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT
from clarifylab.data.synthetic_tables import build_synthetic_corpus, write_synthetic_corpus
from clarifylab.methods.sml.problems import build_problems


class Scripted:
    """A ChatBackend whose reply is ``reply(conversation)``; every prompt it got is kept in ``seen``."""

    name = "scripted"

    def __init__(self, reply: Callable[[list[dict[str, str]]], str], model_id: str = "scripted") -> None:
        self.reply, self.model_id, self.seen = reply, model_id, []

    def complete(self, batch: Sequence[list[dict[str, str]]], params) -> list[str]:
        self.seen += [list(c) for c in batch]
        return [self.reply(list(c)) for c in batch]


def problems(n: int = 4, split: str = "train"):
    corpus = build_synthetic_corpus(seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})
    return build_problems(corpus[split], seed=0, max_problems=n)


def answer_of(conversation, by_question) -> str:
    """The gold answer of the problem whose question opens ``conversation`` (student prompts)."""
    return by_question[conversation[1]["content"]]


def dataset_node(root, **overrides):
    """conf/dataset/synthetic_tables.yaml over a small corpus written to ``root/corpus``."""
    write_synthetic_corpus(root / "corpus", seed=0, tables_per_split={"train": 2, "validation": 1, "test": 1})
    node = OmegaConf.load(PROJECT_ROOT / "conf" / "dataset" / "synthetic_tables.yaml")
    node.merge_with({"dir": str(root / "corpus"), "auto_generate": False, **overrides})
    return node
