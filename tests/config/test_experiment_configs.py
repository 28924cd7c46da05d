"""The ACT paper experiments (conf/experiment/act_paper/*.yaml): they compose, resolve, and carry the paper's
hyperparameters (ACT App. J.2); the CPU small-scale overrides of experiments/README.md swap the model only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra.utils import get_method, get_object
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from clarifylab.config import PROJECT_ROOT

sys.path.insert(0, str(Path(__file__).parent))
from test_config_composition import compose_resolved, targets  # noqa: E402

ACT_PAPER = PROJECT_ROOT / "conf" / "experiment" / "act_paper"
INIT = "sft_policy=/runs/sft/policy"     # the one mandatory value of every ACT experiment (-> trainer.init_policy)
# experiment -> (trainer, ablation, dataset) it selects
TRAIN_EXPERIMENTS = {
    "pacific_sft": ("sft", "none", "pacific"),
    "abg_coqa_sft": ("sft", "none", "abg_coqa"),
    "pacific_act": ("act", "none", "pacific"),
    "abg_coqa_act": ("act", "none", "abg_coqa"),
    "pacific_act_pseudo": ("act", "none", "pacific"),
    "pacific_irpo": ("irpo", "none", "pacific"),
    "ambigsql_sft": ("sft", "none", "ambigsql"),
    "ambigsql_act": ("act", "none", "ambigsql"),
    "ambigsql_irpo": ("irpo", "none", "ambigsql"),
    "abg_coqa_irpo": ("irpo", "none", "abg_coqa"),
    "ablation_no_on_policy": ("act", "no_on_policy", "pacific"),
    "ablation_no_simulation": ("act", "no_simulation", "pacific"),
    "ablation_random_actions": ("act", "random_actions", "pacific"),
}
EVAL_EXPERIMENTS = {"pacific": "pacific", "abg_coqa": "abg_coqa", "ambigsql": "ambigsql"}
BUILDING_BLOCKS = {"base", "sft_hparams", "act_hparams", "irpo_hparams"}   # included by the others; compose alone too
SFT_PAPER = {"lr": 2.0e-5, "max_epochs": 8, "batch_size": 4, "max_length": 1280, "policy_from": "best"}
ACT_PAPER_HP = {"beta": 0.01, "lr": 5.0e-7, "max_epochs": 12, "batch_size": 4, "max_length": 1280,
                "threshold": None, "policy_from": "best", "objective": "val/reward_margin"}  # threshold: per task


def overrides_for(name: str) -> list[str]:
    needs_init = name in ("act_hparams", "irpo_hparams") or (name in TRAIN_EXPERIMENTS and
                                                            TRAIN_EXPERIMENTS[name][0] in ("act", "irpo"))
    return [f"experiment=act_paper/{name}"] + ([INIT] if needs_init else [])


def test_every_file_is_covered():
    on_disk = {p.stem for p in ACT_PAPER.glob("*.yaml")}
    assert on_disk == set(TRAIN_EXPERIMENTS) | set(EVAL_EXPERIMENTS) | BUILDING_BLOCKS


@pytest.mark.parametrize("name", sorted({p.stem for p in ACT_PAPER.glob("*.yaml")}))
def test_composes_with_train_and_names_importable_targets(name):
    cfg, container = compose_resolved("train", overrides_for(name))
    for target in targets(container):
        get_object(target)
    get_method(container["trainer"]["recipe"])
    if name in BUILDING_BLOCKS - {"base"}:  # a trainer mixin alone selects its trainer, keeps train.yaml's student
        assert container["trainer"]["name"] == name.removesuffix("_hparams")
        assert cfg.hydra.runtime.choices.student == "smollm2"
        return
    assert container["student"]["source"] == "hub"
    assert container["student"]["name_or_path"] == "HuggingFaceH4/zephyr-7b-beta"
    assert cfg.hydra.runtime.choices.hardware == "gpu"


@pytest.mark.parametrize("name", sorted(TRAIN_EXPERIMENTS))
def test_selects_trainer_ablation_dataset(name):
    cfg, container = compose_resolved("train", overrides_for(name))
    trainer, ablation, dataset = TRAIN_EXPERIMENTS[name]
    assert (container["trainer"]["name"], container["act_ablation"]["name"], container["dataset"]["name"]) == \
        (trainer, ablation, dataset)
    assert cfg.hydra.runtime.choices.act_ablation == ablation
    assert container["dataset"]["conversations"] == 50


@pytest.mark.parametrize("name", [n for n, (t, _, _) in TRAIN_EXPERIMENTS.items() if t == "sft"])
def test_sft_hyperparameters_are_the_papers(name):
    _, container = compose_resolved("train", overrides_for(name))
    assert {key: container["trainer"][key] for key in SFT_PAPER} == SFT_PAPER


@pytest.mark.parametrize("name", [n for n, (t, _, _) in TRAIN_EXPERIMENTS.items() if t == "irpo"])
def test_irpo_starts_from_the_sft_policy_with_the_act_dpo_settings(name):
    _, container = compose_resolved("train", overrides_for(name))
    t = container["trainer"]
    assert (t["init_policy"], t["alpha"], t["beta"], t["lr"], t["batch_size"], t["max_length"]) == \
        ("/runs/sft/policy", 1.0, 0.01, 5.0e-7, 4, 1280)
    assert t["recipe"] == "clarifylab.methods.irpo.recipe.run_irpo" and t["iterations"] >= 1


@pytest.mark.parametrize("name", [n for n, (t, _, _) in TRAIN_EXPERIMENTS.items() if t == "act"])
def test_act_hyperparameters_are_the_papers(name):
    _, container = compose_resolved("train", overrides_for(name))
    assert {key: container["trainer"][key] for key in ACT_PAPER_HP} == ACT_PAPER_HP
    assert container["trainer"]["init_policy"] == "/runs/sft/policy"


@pytest.mark.parametrize("name", [n for n, (t, _, _) in TRAIN_EXPERIMENTS.items() if t == "act"])
def test_act_without_init_policy_fails_loudly(name):
    with pytest.raises((MissingMandatoryValue, InterpolationToMissingValueError), match="sft_policy"):
        compose_resolved("train", [f"experiment=act_paper/{name}"])


@pytest.mark.parametrize("conversations", [50, 100, 250])
def test_pairs_follow_dataset_and_conversations(conversations, monkeypatch, tmp_path):
    monkeypatch.setenv("CLARIFYLAB_GENERATED_DIR", str(tmp_path))
    _, act = compose_resolved("train", overrides_for("pacific_act") + [f"dataset.conversations={conversations}"])
    _, pseudo = compose_resolved("train", overrides_for("pacific_act_pseudo")
                                 + [f"dataset.conversations={conversations}"])
    _, coqa = compose_resolved("train", overrides_for("abg_coqa_act") + [f"dataset.conversations={conversations}"])
    assert act["dataset"]["conversations"] == conversations
    assert act["trainer"]["pairs_path"] == f"{tmp_path}/act_pairs/pacific-c{conversations}/train.jsonl"
    assert act["trainer"]["val_pairs_path"] == f"{tmp_path}/act_pairs/pacific-c{conversations}/validation.jsonl"
    assert pseudo["trainer"]["pairs_path"] == f"{tmp_path}/act_pairs/pacific-c{conversations}-pseudo/train.jsonl"
    assert coqa["trainer"]["pairs_path"] == f"{tmp_path}/act_pairs/abg_coqa-c{conversations}/train.jsonl"


@pytest.mark.parametrize("name", sorted(EVAL_EXPERIMENTS) + ["base"])
def test_evaluation_experiments_compose_with_evaluate(name):
    cfg, container = compose_resolved("evaluate", [f"experiment=act_paper/{name}"])
    assert container["dataset"]["name"] == EVAL_EXPERIMENTS.get(name, "synthetic_tables")
    assert container["student"]["name_or_path"] == "HuggingFaceH4/zephyr-7b-beta"
    assert cfg.hydra.runtime.choices.hardware == "gpu"
    assert "trainer" not in container


def test_cpu_small_scale_overrides_swap_model_keep_method():
    """experiments/README.md: the same experiment with student=smollm2 hardware=cpu and step caps."""
    _, container = compose_resolved("train", overrides_for("pacific_act") + [
        "student=smollm2", "hardware=cpu", "trainer.max_steps=20", "trainer.max_length=1024"])
    assert container["student"]["source"] == "smollm2_gguf"
    assert container["hardware"]["accelerator"] == "cpu"
    assert (container["trainer"]["name"], container["trainer"]["beta"], container["trainer"]["max_steps"]) == \
        ("act", 0.01, 20)


class _FixedM:
    """A stand-in for the conditional generation model M: a fixed question / answer per requested action."""

    name = "m"
    model_id = "m"

    def complete(self, batch, params):
        return ["which year do you mean ?" if "Do NOT answer" in c[-1]["content"] else "1" for c in batch]


def test_tiny_smoke_of_the_pacific_act_experiment(tmp_path, monkeypatch):
    """README pipeline on the tiny model: pairs into the experiment's act_pairs_dir, then run_act for 2 steps."""
    from omegaconf import OmegaConf

    from clarifylab.methods.act.pairs import generate_act_pairs
    from clarifylab.methods.act.recipe import run_act

    _, container = compose_resolved("train", ["experiment=act_paper/pacific_act", "sft_policy=null"])
    if not Path(container["dataset"]["path"]).is_file():
        pytest.skip(f"PACIFIC not found at {container['dataset']['path']} (set CLARIFYLAB_DATA_DIR)")
    monkeypatch.setenv("CLARIFYLAB_GENERATED_DIR", str(tmp_path / "generated"))
    out = tmp_path / "run"
    _, container = compose_resolved("train", [
        "experiment=act_paper/pacific_act", "sft_policy=null", "student=tiny", "hardware=cpu",
        "logger=csv", f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_steps=2", "trainer.batch_size=2",
        "trainer.eval_batch_size=4", "trainer.max_turns=2", "trainer.max_new_tokens=6", "trainer.progress_bar=none",
        "trainer.model_summary=false", "trainer.checkpoint_every_n_steps=null"])
    container["output_dir"] = str(out)
    container["logger"]["csv"]["save_dir"] = str(out)   # resolved before output_dir was set
    cfg = OmegaConf.create(container)
    generate_act_pairs(container["act_pairs_dir"], dataset=container["dataset"], teacher={"name": "fixed"},
                       classifier=container["classifier"], paths=container["paths"],
                       splits=["train", "validation"], max_examples=4, generator=_FixedM())
    assert Path(cfg.trainer.pairs_path) == tmp_path / "generated" / "act_pairs" / "pacific-c50" / "train.jsonl"
    moved = _ParameterChange()
    result = run_act(cfg, extra_callbacks=[moved])
    assert result["train/steps"] == 2 and result["train/loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at lr 5e-7
    # the 2 optimizer steps changed the trainable (LoRA) weights, by at most lr per step (Adam's step size)
    assert moved.names and 0 < moved.max_abs_change <= 2 * 5.0e-7 * (1 + 1e-3), moved.max_abs_change
    assert (out / "policy").is_dir()


class _ParameterChange(pl.Callback):
    """Records the largest absolute change of any trainable parameter between the start and end of fit."""

    def on_train_start(self, trainer, pl_module):
        self.before = {n: p.detach().clone() for n, p in pl_module.named_parameters() if p.requires_grad}
        self.names = sorted(self.before)

    def on_train_end(self, trainer, pl_module):
        after = dict(pl_module.named_parameters())
        self.max_abs_change = max(float((after[n].detach() - p).abs().max()) for n, p in self.before.items())


def test_paper_runs_state_their_action_classifier_and_user_simulator():
    """The paper's A and U are LLMs; act_paper/base.yaml selects heuristic/oracle on purpose and says why, and the
    command line can switch to the LLM ones."""
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(ACT_PAPER / "base.yaml"))["defaults"]
    assert {"override /classifier": "heuristic"} in defaults and {"override /simulator": "oracle"} in defaults
    assert "A and U (deviation, deliberate)" in (ACT_PAPER / "base.yaml").read_text()
    cfg, _ = compose_resolved("train", overrides_for("pacific_act"))
    assert (cfg.hydra.runtime.choices.classifier, cfg.hydra.runtime.choices.simulator) == ("heuristic", "oracle")
    cfg, _ = compose_resolved("train", overrides_for("pacific_act") + ["classifier=llm_fewshot", "simulator=llm"])
    assert (cfg.hydra.runtime.choices.classifier, cfg.hydra.runtime.choices.simulator) == ("llm_fewshot", "llm")
