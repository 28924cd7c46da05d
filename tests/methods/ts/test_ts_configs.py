"""The teacher-student configs compose and validate: every ablation option inside task=ts_curriculum, the build,
benchmark and fine-tune experiments, and the protocol."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from clarifylab.config import PROJECT_ROOT, register_resolvers
from clarifylab.errors import ConfigError
from clarifylab.schemas import validate_config

CONF = PROJECT_ROOT / "conf"
register_resolvers()


def composed(config_name, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "ablation").glob("*.yaml")))
def test_ablation_options_validate_in_the_task(option):
    cfg = composed("generate", ["task=ts_curriculum", f"ablation@task.ablation={option}"])
    validate_config(cfg)
    assert cfg.task.ablation.name == option


def test_misspelled_ablation_key_is_refused():
    cfg = composed("generate", ["task=ts_curriculum", "+task.ablation.valu_mode=alter"])
    with pytest.raises(ConfigError, match="task.ablation.valu_mode"):
        validate_config(cfg)


@pytest.mark.parametrize(("config", "name", "extra"), [
    ("generate", "ts/cpu_build_tatqa", []), ("generate", "ts/cpu_build_wtq", []),
    ("generate", "ts/build_tatqa", ["task.teacher.model=m", "task.student.model=m"]),
    ("generate", "ts/build_wtq", ["task.teacher.model=m", "task.student.model=m"]),
    ("evaluate", "ts/benchmark", []), ("evaluate", "ts/cpu_benchmark", []),
    ("train", "ts/finetune", []), ("train", "ts/cpu_finetune", [])])
def test_experiments_validate(config, name, extra):
    cfg = composed(config, [f"experiment={name}", *extra])
    validate_config(cfg)
    if config == "train":
        assert (cfg.trainer.name, cfg.trainer.lr, cfg.trainer.max_epochs) == ("sft", 1.0e-4, 4)
        assert (cfg.student.lora.r, cfg.student.lora.alpha) == (16, 16) and cfg.dataset.name == "ts_curriculum"
    if config == "evaluate":
        assert cfg.protocol.name == "ts_benchmark" and cfg.dataset.name == "ts_curriculum"
    if name == "ts/cpu_build_wtq":
        assert cfg.task.dataset.name == "wtq" and cfg.task.ablation.strategies == ["column", "row", "value", "question"]
