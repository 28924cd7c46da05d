"""Which training run a policy folder came from: read from <run dir>/.hydra, also through IRPO's symlink."""

from __future__ import annotations

from clarifylab.evaluation.policy_eval import trained_run_info


def test_run_info_follows_the_link_name_not_its_target(tmp_path):
    run = tmp_path / "irpo_run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("trainer:\n  name: irpo\ndataset:\n  conversations: 50\n")
    (run / "iter_1" / "policy").mkdir(parents=True)
    (run / "policy").symlink_to("iter_1/policy")
    assert trained_run_info(run / "policy") == {"approach": "irpo", "conversations": 50}
    assert trained_run_info(tmp_path / "elsewhere" / "policy") == {"approach": "trained", "conversations": None}
