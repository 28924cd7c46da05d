"""The preference-step bench (bench/pairs.py, bench/preference_step.py, bench/preference_table.py,
bench/run_preference.py) on the tiny model: deterministic, capped pairs; the unique-token count and the step
schedule; the table's ratio arithmetic; the floor's KV-cache log-probs equal the plain forward's, so its step-1
loss is ln 2 and its losses follow the project's step for step. (No timing is asserted.)"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pairs import (  # noqa: E402
    build_pairs,
    cap_prompt,
    load_examples,
    prompt_length,
    prompt_token_count,
    resolve_source,
    step_schedule,
    unique_tokens,
)
from bench.preference_table import add_ratios, format_table, side_summary, versus  # noqa: E402
from clarifylab.data.chat_format import prompt_messages  # noqa: E402
from clarifylab.errors import ConfigError  # noqa: E402
from clarifylab.training.preference_data import PreferencePair, TokenizedPair  # noqa: E402

PACIFIC = ROOT.parent / "shared" / "data" / "pacific" / "validation.json"


@pytest.fixture(scope="module")
def tokenizer():
    from clarifylab.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def synthetic():
    return load_examples("synthetic", "/nonexistent", seed=0, n_pairs=8)


def _records(pairs):
    return [pair.to_dict() for pair in pairs]


# ---- pairs ----


def test_pairs_are_deterministic_alternate_actions_and_fit_the_cap(tokenizer, synthetic):
    first = build_pairs(synthetic, tokenizer, n_pairs=6, seed=0, max_prompt_tokens=400)
    again = build_pairs(load_examples("synthetic", "/nonexistent", seed=0, n_pairs=8), tokenizer, 6, 0, 400)
    other = build_pairs(synthetic, tokenizer, 6, 1, 400)
    assert _records(first) == _records(again)
    assert [p.id for p in first] != [p.id for p in other]
    assert [p.meta["action"] for p in first] == ["clarify", "answer"] * 3
    by_id = {example.id: example for example in synthetic}
    for pair in first:
        example = by_id[pair.id]
        assert pair.chosen == [{"role": "assistant", "content": example.response}]
        assert pair.meta["rejected_action"] != pair.meta["action"]
        assert pair.rejected[0]["content"] != example.response
        assert prompt_token_count(pair.prompt, tokenizer) <= 400


def test_long_table_prompts_are_pacific_length_and_capped_at_1024(tokenizer, synthetic):
    pairs = build_pairs(synthetic, tokenizer, n_pairs=8, seed=0, max_prompt_tokens=1024)
    lengths = [prompt_token_count(pair.prompt, tokenizer) for pair in pairs]
    assert max(lengths) <= 1024
    assert min(lengths) >= 600  # PACIFIC's prompts: 600-2,400 tokens


def test_cap_prompt_keeps_the_longest_context_prefix_that_fits(tokenizer, synthetic):
    example = synthetic[0]
    full = prompt_token_count(prompt_messages(example), tokenizer)
    assert cap_prompt(example, tokenizer, full) is example
    capped = cap_prompt(example, tokenizer, full - 50)
    chars = len(capped.context)
    assert example.context.startswith(capped.context) and capped.meta["bench_context_chars"] == chars
    assert prompt_token_count(prompt_messages(capped), tokenizer) <= full - 50
    longer = replace(example, context=example.context[:chars + 1])
    assert prompt_token_count(prompt_messages(longer), tokenizer) > full - 50
    assert cap_prompt(example, tokenizer, 5) is None  # the instruction alone does not fit


def test_unique_tokens_count_the_shared_prompt_once():
    pair = PreferencePair(id="p", prompt=[{"role": "user", "content": "q"}],
                          chosen=[{"role": "assistant", "content": "a"}],
                          rejected=[{"role": "assistant", "content": "b"}])
    tokenized = TokenizedPair(pair, {"input_ids": [1, 2, 3, 7, 8, 9], "labels": [-100, -100, -100, 7, 8, -100]},
                              {"input_ids": [1, 2, 3, 5], "labels": [-100, -100, -100, 5]})
    assert prompt_length(tokenized) == 3
    assert unique_tokens(tokenized) == 3 + 3 + 1
    bad = TokenizedPair(pair, tokenized.chosen, {"input_ids": [1, 4, 3, 5], "labels": [-100, -100, -100, 5]})
    with pytest.raises(ValueError, match="differ before the first scored token"):
        prompt_length(bad)


def test_step_schedule_wraps_around_in_pair_order():
    assert step_schedule(5, 2, 4) == [[0, 1], [2, 3], [4, 0], [1, 2]]
    with pytest.raises(ConfigError):
        step_schedule(4, 0, 2)


def test_auto_source_falls_back_to_synthetic_and_pacific_must_exist(tmp_path):
    assert resolve_source("auto", tmp_path) == "synthetic"
    with pytest.raises(ConfigError):
        resolve_source("squad", tmp_path)
    with pytest.raises(Exception, match="pacific/validation.json is missing"):
        resolve_source("pacific", tmp_path)


@pytest.mark.data
@pytest.mark.skipif(not PACIFIC.is_file(), reason="PACIFIC is not in ../shared/data")
def test_pacific_pairs_are_gold_vs_other_action_and_capped(tokenizer):
    examples = load_examples("pacific", PACIFIC.parents[1], seed=0)
    pairs = build_pairs(examples, tokenizer, n_pairs=16, seed=0, max_prompt_tokens=1024)
    assert [p.meta["action"] for p in pairs] == ["clarify", "answer"] * 8
    assert all(p.meta["task"] == "pacific" for p in pairs)
    assert max(prompt_token_count(p.prompt, tokenizer) for p in pairs) <= 1024
    assert _records(pairs) == _records(build_pairs(examples, tokenizer, 16, 0, 1024))


# ---- the table ----


def _run(seconds, losses, rss_kib):
    return {"step_seconds": seconds, "losses": losses, "peak_rss_kib": rss_kib}


def test_summary_drops_step_one_and_computes_the_ratios_exactly():
    tokens = [100, 200, 300]
    runs = {
        "project": [_run([9.0, 2.0, 4.0], [0.5, 0.4, 0.3], 2 * 2 ** 20),
                    _run([8.0, 3.0, 5.0], [0.5, 0.4, 0.3], 2 ** 20)],
        "trl": [_run([9.0, 6.0, 6.0], [0.5, 0.4, 0.31], 4 * 2 ** 20)],
        "floor": [_run([9.0, 1.0, 2.0], [0.5, 0.4, 0.3], 2 ** 20)],
    }
    summaries = add_ratios({name: side_summary(side, tokens) for name, side in runs.items()})
    project = summaries["project"]
    assert (project["median_s"], project["min_s"], project["max_s"]) == (3.5, 2.0, 5.0)
    assert project["tokens_per_s"] == pytest.approx(2 * 500 / 14)
    assert project["peak_rss_gib"] == 2.0 and project["warmup_s"] == [9.0, 8.0]
    assert project["x_floor_time"] == pytest.approx(3.5 / 1.5) and project["x_floor_rss"] == 2.0
    assert summaries["trl"]["max_loss_gap"] == pytest.approx(0.01)
    assert versus(summaries, "project", "trl") == {"speed": pytest.approx(6.0 / 3.5), "rss": 0.5}
    table = format_table(summaries, {"floor": "the floor"}, steps=3, repeats=2)
    assert "| project | 3.50 [2.00–5.00] | 71.4 | 2.00 GiB | 2.33× | 2.00× |" in table
    assert "| the floor | 1.50 [1.00–2.00] | 166.7 | 1.00 GiB | 1.00× | 1.00× |" in table
    assert "project vs TRL: speed 1.71×, RSS 0.50×" in table
    assert "step-1 loss (ln 2 = 0.693147): project 0.500000, 0.500000; trl 0.500000; floor 0.500000" in table


def test_summary_without_a_floor_leaves_the_floor_ratios_empty():
    summaries = add_ratios({"project": side_summary([_run([1.0, 2.0], [0.7, 0.6], 2 ** 20)], [10, 10])})
    assert math.isnan(summaries["project"]["x_floor_time"])
    assert "| project | 2.00 [2.00–2.00] | 5.0 | 1.00 GiB | – | – |" in format_table(summaries, {}, 2, 1)
    with pytest.raises(ValueError, match="nothing to time"):
        side_summary([_run([1.0], [0.7], 1)], [10])


# ---- sides ----


def test_driver_rejects_bad_sides_and_a_missing_trl_names_make_bench(monkeypatch):
    import importlib.util

    from bench import preference_step
    from bench.run_preference import parse_sides

    assert parse_sides("project:packed, project:concatenated,trl,floor") == [
        ("project:packed", "project", "packed"), ("project:concatenated", "project", "concatenated"),
        ("trl", "trl", None), ("floor", "floor", None)]
    for bad in ("floor:packed", "project:fast", "deepspeed", "trl,trl", ""):
        with pytest.raises(ConfigError):
            parse_sides(bad)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    preference_step.check_side_dependencies("floor")
    with pytest.raises(preference_step.MissingDependencyError, match=r"'trl'.*run `make bench`"):
        preference_step.check_side_dependencies("trl")


def test_floor_cached_logps_equal_the_plain_concatenated_forward(tokenizer, synthetic):
    import torch

    from bench.preference_step import cached_pair_logps
    from clarifylab.models import build_tiny_model_and_tokenizer
    from clarifylab.training.logprobs import concatenated_forward
    from clarifylab.training.preference_data import PreferenceCollator, tokenize_pair

    model, tiny_tokenizer = build_tiny_model_and_tokenizer(seed=0)
    model.eval()
    items = [tokenize_pair(pair, tiny_tokenizer, 600)
             for pair in build_pairs(synthetic, tiny_tokenizer, n_pairs=3, seed=0, max_prompt_tokens=300)]
    batch = PreferenceCollator(tiny_tokenizer.pad_token_id)(items)
    with torch.no_grad():
        plain = concatenated_forward(model, batch.chosen, batch.rejected, tiny_tokenizer.pad_token_id)
        cached = [cached_pair_logps(model, item) for item in items]
    torch.testing.assert_close(torch.stack([c[0] for c in cached]), plain.chosen_logps, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack([c[1] for c in cached]), plain.rejected_logps, rtol=0, atol=1e-5)
    assert [c[2] for c in cached] == plain.chosen_tokens.tolist()
    assert [c[3] for c in cached] == plain.rejected_tokens.tolist()


def _side_args(pairs_path, side, steps=3):
    return argparse.Namespace(side=side, pairs=str(pairs_path), result="unused", label=None, student="tiny",
                              cache_dir=str(ROOT / ".cache"), batch_size=2, steps=steps, max_length=400, lr=1e-2,
                              beta=0.1, lora_dropout=0.0, forward="auto", threads=1, seed=0)


def test_floor_step_one_loss_is_ln2_and_its_losses_follow_the_project_step(tokenizer, synthetic, tmp_path):
    from bench.preference_step import run_side
    from clarifylab.training.preference_data import write_pairs

    write_pairs(tmp_path / "pairs.jsonl", build_pairs(synthetic, tokenizer, n_pairs=3, seed=0,
                                                      max_prompt_tokens=200))
    floor = run_side(_side_args(tmp_path / "pairs.jsonl", "floor"))
    project = run_side(_side_args(tmp_path / "pairs.jsonl", "project"))
    assert floor["losses"][0] == pytest.approx(math.log(2), abs=1e-6)
    assert project["losses"][0] == pytest.approx(math.log(2), abs=1e-6)
    assert floor["schedule"] == project["schedule"] == [[0, 1], [2, 0], [1, 2]]
    assert floor["losses"][1:] == pytest.approx(project["losses"][1:], abs=1e-5)
    assert floor["losses"][1] != pytest.approx(math.log(2), abs=1e-5)  # the adapters moved after step 1
    assert len(floor["step_seconds"]) == 3 and floor["peak_rss_kib"] > 0


@pytest.mark.slow
def test_driver_runs_each_side_in_its_own_process_and_writes_the_table(tmp_path):
    import importlib.util
    import json

    from bench.run_preference import main

    sides = "project,floor" + (",trl" if importlib.util.find_spec("trl") else "")
    assert main(["--student", "tiny", "--source", "synthetic", "--pairs", "3", "--steps", "2",
                 "--max-prompt-tokens", "200", "--repeats", "1", "--threads", "1", "--sides", sides,
                 "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "preference_step.json").read_text())
    assert list(record["runs"]) == sides.split(",")
    for runs in record["runs"].values():
        assert runs[0]["losses"][0] == pytest.approx(math.log(2), abs=1e-6)
        assert runs[0]["peak_rss_kib"] > 0
    assert (tmp_path / "preference_step.md").read_text() == record["table"]
