"""bench/rollout_throughput.py on the tiny model with the oracle user: both modes roll out the same trajectories,
the batched mode makes one backend call per round where the per-example loop makes one per example and round, and
the JSON + markdown land in --out. (No timing is asserted.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clarifylab.errors import ClarifyLabError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def bench():
    from bench import rollout_throughput

    return rollout_throughput


def test_batched_and_sequential_agree_and_differ_only_in_calls(bench, tmp_path):
    result = bench.main(["--student", "tiny", "--simulator", "oracle", "--source", "synthetic",
                         "--max-prompt-tokens", "400", "--examples", "5", "--batch-size", "2", "--max-turns", "2",
                         "--max-new-tokens", "4", "--first-ask", "--threads", "1", "--repeats", "3",
                         "--out", str(tmp_path)])
    batched, unshared, sequential = result["modes"]
    assert [m["mode"] for m in result["modes"]] == ["batched", "unshared", "sequential"]
    assert (batched["rollout_calls"], unshared["rollout_calls"], sequential["rollout_calls"]) == (1, 1, 5)
    # --first-ask: every trajectory is live for one simulated round -> one policy call (batched) vs one per example
    assert batched["usage"]["policy"]["calls"] == 1 and sequential["usage"]["policy"]["calls"] == 5
    assert batched["usage"]["policy"]["conversations"] == sequential["usage"]["policy"]["conversations"] == 5
    assert batched["simulated_rounds"] == sequential["simulated_rounds"] == 5
    for mode in ("batched", "unshared"):  # tiny greedy: batch-invariant
        assert result["agreement"][mode] == {"identical": 5, "total": 5, "differing_ids": []}
    assert batched["generated_tokens"] == unshared["generated_tokens"] == sequential["generated_tokens"]
    # the synthetic questions of one table share its prompt: the shared prefill runs fewer prompt tokens
    assert batched["prefill_tokens"] < unshared["prefill_tokens"] == sequential["prefill_tokens"]
    assert batched["prompt_tokens"] == unshared["prompt_tokens"] == sequential["prompt_tokens"]
    assert batched["repeats"] == sequential["repeats"] == 3 and batched["repeats_identical"]
    assert batched["seconds_min"] <= batched["seconds"] <= batched["seconds_max"]
    saved = json.loads((tmp_path / "rollout_throughput.json").read_text())
    assert saved["trajectories"]["batched"] == saved["trajectories"]["sequential"]
    assert len(saved["trajectories"]["batched"]) == 5
    report = (tmp_path / "rollout_throughput.md").read_text()
    assert "| batched | 2 | 1 |" in report and "| unshared | 2 | 1 |" in report and "| sequential | 1 | 5 |" in report
    assert "batched: 5 / 5" in report and "unshared: 5 / 5" in report


@pytest.mark.parametrize("argv, message", [
    (["--examples", "0"], "--examples must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--source", "pacific", "--data-dir", "/nonexistent"], "is missing"),
])
def test_bad_arguments_fail_before_any_model_loads(bench, tmp_path, argv, message):
    with pytest.raises(ClarifyLabError, match=message):
        bench.parse_args(argv + ["--out", str(tmp_path)])
