"""bench/act_step_split.py: the timing proxies attribute each call of the ACT replacer to its part, and a tiny-model
run times every part of real ACT steps (the replacer and PreferenceModule unchanged). (No timing is asserted.)"""

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
    from bench import act_step_split

    return act_step_split


class Echo:
    name, model_id = "echo", "echo"

    def __init__(self):
        self.batches = []

    def complete(self, batch, params):
        self.batches.append(len(batch))
        return ["ok"] * len(batch)


def test_first_policy_call_is_sampling_and_later_ones_are_simulated_turns(bench):
    clock = bench.Clock()
    policy = bench.TimedPolicy(Echo(), clock)
    for size in (4, 2, 1):
        assert policy.complete([[]] * size, None) == ["ok"] * size
    assert policy.calls == 3 and policy.inner.batches == [4, 2, 1]
    assert set(clock.seconds) == {"sampling", "simulation: policy turns"}


def test_proxy_times_one_method_and_forwards_the_rest(bench):
    clock = bench.Clock()

    class Simulator:
        label = "u"

        def reply(self, requests):
            return [r.upper() for r in requests]

        def own_texts(self, request):
            return {"goal": [request]}

    proxy = bench.TimedProxy(Simulator(), "reply", "simulation: user simulator", clock)
    assert proxy.reply(["a", "b"]) == ["A", "B"] and proxy.own_texts("x") == {"goal": ["x"]} and proxy.label == "u"
    assert list(clock.seconds) == ["simulation: user simulator"]


def test_tiny_act_steps_report_every_part(bench, tmp_path):
    result = bench.main(["--student", "tiny", "--simulator", "oracle", "--source", "synthetic",
                         "--max-prompt-tokens", "400", "--pairs", "4", "--steps", "2", "--warmup", "0",
                         "--max-new-tokens", "4", "--max-turns", "2", "--threads", "1", "--out", str(tmp_path)])
    rows = {row["part"]: row for row in result["rows"]}
    assert list(rows) == [*bench.PARTS, "total"]
    assert rows["sampling"]["median_s"] > 0 and rows["forward + backward"]["median_s"] > 0
    assert len(result["steps"]) == 2 and sum(result["branch_totals"].values()) == 2 * 4  # every pair, every step
    assert all(step["total"] >= step["sampling"] + step["forward + backward"] for step in result["steps"])
    saved = json.loads((tmp_path / "act_step_split.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert "| forward + backward |" in (tmp_path / "act_step_split.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--pairs", "0"], "--pairs must be >= 1"),
                                           (["--warmup", "-1"], "--warmup must be >= 0")])
def test_bad_arguments_fail_before_any_model_loads(bench, tmp_path, argv, message):
    with pytest.raises(ClarifyLabError, match=message):
        bench.parse_args(argv + ["--out", str(tmp_path)])
