"""Few-shot LLM action classifier: label parsing, heuristic fallback, batching, demonstrations, prompt bounds."""

from __future__ import annotations

from collections import Counter

import pytest

from clarifylab.backends.base import SamplingParams
from clarifylab.data.schema import Action, Clarification, Example, Turn
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.env.action_classifier import ActionClassifier
from clarifylab.env.llm_action_classifier import (
    BUILTIN_DEMONSTRATIONS,
    CLASSIFIER_SYSTEM,
    FewShotLLMActionClassifier,
    parse_label,
)
from clarifylab.errors import ConfigError

C, A = Action.CLARIFY, Action.ANSWER


class CannedBackend:
    """Returns the given texts in order (cycling); records every batch."""

    name = "canned"
    model_id = "canned"

    def __init__(self, texts):
        self.texts = list(texts)
        self.calls: list[list[list[dict]]] = []

    def complete(self, batch, params: SamplingParams) -> list[str]:
        self.calls.append([list(c) for c in batch])
        return [self.texts[i % len(self.texts)] for i in range(len(batch))]


@pytest.fixture(scope="module")
def pool() -> list[Example]:
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 10, "validation": 0, "test": 0})["train"]


def labels(prompt) -> list[str]:
    return [m["content"] for m in prompt if m["role"] == "assistant"]


@pytest.mark.parametrize("text, expected", [
    ("Clarify.", C), ("ANSWER", A), ("clarifying question", C), ("It is a direct answer.", A),
    ("Answer: clarify", A), ("no idea", None), ("", None),
])
def test_parse_label(text, expected):
    assert parse_label(text) is expected


def test_classify_parses_replies_and_falls_back_to_heuristic_in_one_call(pool):
    backend = CannedBackend(["Clarify.", "answer", "garbage", "???"])
    classifier = FewShotLLMActionClassifier(backend, pool, k=4, seed=0)
    assert isinstance(classifier, ActionClassifier)
    responses = ["Which year?", "42", "Which year do you mean?", "The answer is 42."]
    assert classifier.classify(responses, pool[:4]) == [C, A, C, A]  # last two: heuristic
    assert classifier.fallbacks == 2
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 4
    assert classifier.classify([]) == [] and len(backend.calls) == 1
    with pytest.raises(ValueError, match="2 responses but 1 examples"):
        classifier.classify(["a", "b"], pool[:1])


def test_prompt_has_k_balanced_seeded_demonstrations(pool):
    classifier = FewShotLLMActionClassifier(CannedBackend(["answer"]), pool, k=4, seed=0)
    prompt = classifier.messages("Which year do you mean?", pool[0])
    assert prompt[0] == {"role": "system", "content": CLASSIFIER_SYSTEM}
    assert len(prompt) == 1 + 2 * 4 + 1 and prompt[-1]["role"] == "user"
    assert Counter(labels(prompt)) == {"clarify": 2, "answer": 2}
    pool_responses = {e.response for e in pool}
    assert all(d.response in pool_responses for d in classifier.demonstrations)
    assert "Last assistant response:\nWhich year do you mean?" in prompt[-1]["content"]
    assert pool[0].history[-1].content in prompt[-1]["content"]

    again = FewShotLLMActionClassifier(CannedBackend(["answer"]), pool, k=4, seed=0)
    assert again.messages("x", pool[0]) == classifier.messages("x", pool[0])
    others = [FewShotLLMActionClassifier(CannedBackend(["answer"]), pool, k=4, seed=s).demonstrations
              for s in range(1, 5)]
    assert any(o != classifier.demonstrations for o in others)


def test_odd_k_short_label_and_small_pool(pool):
    assert Counter(d.action for d in FewShotLLMActionClassifier(CannedBackend(["a"]), pool, k=3).demonstrations) \
        == {C: 2, A: 1}
    one_clarify = [e for e in pool if e.action is C][:1] + [e for e in pool if e.action is A][:5]
    demos = FewShotLLMActionClassifier(CannedBackend(["a"]), one_clarify, k=4).demonstrations
    assert Counter(d.action for d in demos) == {C: 1, A: 3}
    with pytest.raises(ConfigError, match="k=7 demonstrations.*only 6"):
        FewShotLLMActionClassifier(CannedBackend(["a"]), one_clarify, k=7)
    with pytest.raises(ConfigError, match="k must be >= 0"):
        FewShotLLMActionClassifier(CannedBackend(["a"]), pool, k=-1)
    assert len(FewShotLLMActionClassifier(CannedBackend(["a"]), pool, k=0).messages("x")) == 2


def test_builtin_demonstrations_without_pool():
    classifier = FewShotLLMActionClassifier(CannedBackend(["answer"]), None, k=6)
    assert sorted(classifier.demonstrations, key=repr) == sorted(BUILTIN_DEMONSTRATIONS, key=repr)
    assert classifier.classify(["Which one?"]) == [A]  # the canned reply wins over the heuristic


def test_context_and_history_are_bounded():
    history = [Turn("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(11)]
    example = Example(id="long", task="pacific", context="x" * 10_000, history=history, response="Which one?",
                      action=C, goal=["1"], clarifications=[Clarification("the first", "1")])
    classifier = FewShotLLMActionClassifier(CannedBackend(["clarify"]), None, k=2, context_chars=300,
                                            history_messages=4)
    case = classifier.messages("Which one?", example)[-1]["content"]
    assert "x" * 300 in case and "x" * 301 not in case and "[... truncated]" in case
    assert "turn 10" in case and "turn 7" in case and "turn 6" not in case
