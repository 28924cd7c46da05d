"""IRPO sampling, labelling and pairing: exact pairs and counts on hand-made scored samples, seeded sampling,
turn-level labels by the synthetic-tables heuristic, and real seeded sampling from the tiny model."""

from __future__ import annotations

import random

import pytest

from clarifylab.backends.base import SamplingParams
from clarifylab.data.chat_format import prompt_messages
from clarifylab.data.synthetic_tables import build_synthetic_corpus
from clarifylab.methods.irpo.pairs import (
    COUNT_KEYS,
    ScoredSample,
    build_irpo_pairs,
    label_candidates,
    pair_candidates,
    sample_candidates,
)
from clarifylab.env.action_classifier import HeuristicActionClassifier
from clarifylab.metrics.task_heuristics import heuristic_for


@pytest.fixture(scope="module")
def examples():
    # ids train-t000-q0..q3; gold responses '1', 'Which company ...?', 'Which year ...?', '1.09'
    return build_synthetic_corpus(seed=0, tables_per_split={"train": 1, "validation": 0, "test": 0})["train"]


class SeededScript:
    """A scripted policy: reply k of a call is drawn from ``vocabulary`` by ``random.Random(seed)``, so equal
    seeds give equal batches; records the batches it was asked."""

    name = "script"
    model_id = "script"

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        self.calls = []

    def complete(self, batch, params):
        self.calls.append(batch)
        rng = random.Random(params.seed)
        return [rng.choice(self.vocabulary) for _ in batch]


def test_pairs_correct_vs_incorrect_and_counts_skipped_prompts(examples):
    a, b, c, d = examples
    scored = [
        [ScoredSample(a.id, 0, "1", 1.0), ScoredSample(a.id, 1, "7", 0.0), ScoredSample(a.id, 2, "7", 0.0)],
        [ScoredSample(b.id, 0, "Which company?", 0.9), ScoredSample(b.id, 1, "Which one?", 0.95)],  # all correct
        [ScoredSample(c.id, 0, "5", 0.0), ScoredSample(c.id, 1, "6", 0.89)],  # all incorrect (0.89 < 0.9)
        [],  # every sample was empty
    ]
    pairs, counts = pair_candidates(examples, scored, threshold=0.9, seed=0, iteration=3, instruction="Be brief.")
    assert counts == {"prompts": 4, "samples": 7, "empty_samples": 0, "correct_samples": 3, "pairs": 1,
                      "paired_prompts": 1, "skipped_all_correct": 1, "skipped_all_incorrect": 1,
                      "skipped_no_samples": 1, "gold_winners": 0}
    assert set(counts) == set(COUNT_KEYS)
    (pair,) = pairs
    assert pair.id == f"{a.id}/irpo3/0"
    assert pair.prompt == prompt_messages(a, "Be brief.")
    assert pair.chosen == [{"role": "assistant", "content": "1"}]
    assert pair.rejected == [{"role": "assistant", "content": "7"}]
    assert pair.meta == {"example_id": a.id, "task": "synthetic_tables", "dataset_action": "answer", "goal": ["1"],
                         "instruction": "Be brief.", "iteration": 3, "chosen_score": 1.0, "rejected_score": 0.0,
                         "chosen_index": 0, "rejected_index": 1}


def test_gold_fallback_pairs_the_gold_reply_with_an_incorrect_sample_where_none_is_correct(examples):
    a, b, c, d = examples
    scored = [[ScoredSample(c.id, 0, "5", 0.0), ScoredSample(c.id, 1, "6", 0.89)],  # all incorrect
              [ScoredSample(a.id, 0, "1", 1.0)]]                                      # all correct: still skipped
    pairs, counts = pair_candidates([c, a], scored, threshold=0.9, seed=0, iteration=0, gold_fallback=True)
    assert (counts["pairs"], counts["gold_winners"], counts["skipped_all_incorrect"],
            counts["skipped_all_correct"]) == (1, 1, 0, 1)
    (pair,) = pairs
    assert pair.chosen == [{"role": "assistant", "content": c.response}]
    assert pair.rejected[0]["content"] in {"5", "6"}
    assert (pair.meta["chosen_index"], pair.meta["chosen_score"]) == (-1, 1.0)


def test_several_pairs_per_prompt_are_distinct_and_seeded(examples):
    a = examples[0]
    scored = [[ScoredSample(a.id, i, text, score) for i, (text, score) in
               enumerate([("1", 1.0), ("1.0", 1.0), ("2", 0.0), ("3", 0.0), ("1", 1.0)])]]
    pairs, counts = pair_candidates([a], scored, threshold=0.9, seed=5, iteration=0, pairs_per_prompt=10)
    sides = [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in pairs]
    assert sorted(sides) == [("1", "2"), ("1", "3"), ("1.0", "2"), ("1.0", "3")]  # 2 distinct x 2, capped
    assert [p.id for p in pairs] == [f"{a.id}/irpo0/{k}" for k in range(4)] and counts["pairs"] == 4
    first, _ = pair_candidates([a], scored, threshold=0.9, seed=5, iteration=0, pairs_per_prompt=2)
    again, _ = pair_candidates([a], scored, threshold=0.9, seed=5, iteration=0, pairs_per_prompt=2)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again]
    expected = random.Random(f"irpo/5/0/{a.id}").sample(
        [(w, l) for w in ("1", "1.0") for l in ("2", "3")], 2)
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in first] == expected


def test_seeded_sampling_repeats_each_prompt_n_times_and_is_reproducible(examples):
    script = SeededScript([f"reply {i}" for i in range(50)])
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    first = sample_candidates(examples[:2], script, 3, params, instruction="X")
    again = sample_candidates(examples[:2], script, 3, params, instruction="X")
    other = sample_candidates(examples[:2], script, 3, SamplingParams(max_new_tokens=8, temperature=1.0, seed=12))
    assert first == again and first != other
    assert [len(s) for s in first] == [3, 3]
    batch = script.calls[0]
    assert batch == [prompt_messages(examples[0], "X")] * 3 + [prompt_messages(examples[1], "X")] * 3
    rng = random.Random(11)
    flat = [rng.choice(script.vocabulary) for _ in range(6)]
    assert first == [flat[:3], flat[3:]]
    with pytest.raises(ValueError, match="temperature > 0"):
        sample_candidates(examples, script, 2, SamplingParams(temperature=0.0))


def test_labels_are_turn_level_heuristic_scores_and_empty_samples_are_dropped(examples):
    heuristic = heuristic_for("synthetic_tables")
    samples = [["1", "2", "  "], ["Which company do you mean: Fenomar, Quarlix or Novmar?", "43.8"], [], ["1.09"]]
    scored = label_candidates(examples, samples, heuristic, HeuristicActionClassifier())
    assert [[(s.index, s.text, s.score) for s in row] for row in scored] == [
        [(0, "1", 1.0), (1, "2", 0.0)],
        [(0, "Which company do you mean: Fenomar, Quarlix or Novmar?", 1.0), (1, "43.8", 0.0)],  # the action
        [],
        [(0, "1.09", 1.0)],
    ]


def test_build_irpo_pairs_counts_every_sample_including_empty_ones(examples):
    class Fixed:
        name = model_id = "fixed"

        def complete(self, batch, params):
            return ["1", "", "9"] * (len(batch) // 3)

    pairs, counts = build_irpo_pairs(examples[:1], Fixed(), heuristic_for("synthetic_tables"),
                                     HeuristicActionClassifier(), n=3,
                                     params=SamplingParams(temperature=1.0, seed=0), threshold=0.9, seed=0, iteration=0)
    assert counts["samples"] == 3 and counts["empty_samples"] == 1 and counts["pairs"] == 1
    assert (pairs[0].chosen[0]["content"], pairs[0].rejected[0]["content"]) == ("1", "9")


def test_sampling_the_tiny_model_is_seeded(examples):
    from clarifylab.backends.transformers_backend import TransformersBackend
    from clarifylab.models import build_tiny_model_and_tokenizer

    model, tokenizer = build_tiny_model_and_tokenizer(seed=0)
    backend = TransformersBackend(model, tokenizer, batch_size=4)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=3)
    first = sample_candidates(examples[:2], backend, 3, params)
    assert first == sample_candidates(examples[:2], backend, 3, params)
    assert len({text for row in first for text in row}) > 1  # temperature > 0: the N samples differ


def test_ambigsql_clarify_turns_are_labelled_by_the_action_and_answers_by_execution_match(tmp_path,
                                                                                          build_spider_tree):
    """Old labels: H = execution match of every reply against the gold reply, so a gold clarifying question (not a
    query) scored 0 and no clarify prompt could ever have a correct sample."""
    from clarifylab.data.schema import Action, Clarification, Example, Turn

    build_spider_tree(tmp_path / "spider")
    sql = "SELECT count(*) FROM teacher"
    clarify = Example(id="c", task="ambigsql", context="Schema of school", history=[Turn("user", "The teachers?")],
                      response="What do you want to know about them?", action=Action.CLARIFY, goal=[sql],
                      clarifications=[Clarification("How many teachers are there?", sql)], meta={"db_id": "school"})
    answer = Example(id="a", task="ambigsql", context="Schema of school", history=[Turn("user", "How many teachers?")],
                     response=sql, action=Action.ANSWER, goal=[sql], meta={"db_id": "school"})
    samples = [["Which teachers do you mean?", sql], [sql, "SELECT name FROM teacher", "How many of them?"]]
    scored = label_candidates([clarify, answer], samples, heuristic_for("ambigsql", data_dir=tmp_path),
                              HeuristicActionClassifier())
    assert [[s.score for s in row] for row in scored] == [[1.0, 0.0], [1.0, 0.0, 0.0]]
    pairs, counts = pair_candidates([clarify, answer], scored, threshold=1.0, seed=0, iteration=0)
    assert counts["paired_prompts"] == 2
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in pairs] == [
        ("Which teachers do you mean?", sql), (sql, pairs[1].rejected[0]["content"])]
