"""Every option of every config group composes, resolves, and names importable targets."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method, get_object
from omegaconf import OmegaConf

from clarifylab.config import PROJECT_ROOT, register_resolvers

CONF = PROJECT_ROOT / "conf"
register_resolvers()

# group -> the primary config that uses it
GROUPS = {
    "paths": "train", "hardware": "train", "logger": "train", "student": "train", "teacher": "train",
    "dataset": "train", "trainer": "train", "act_ablation": "train", "simulator": "train", "classifier": "train",
    "experiment": "train", "task": "generate", "policy": "evaluate", "baseline": "evaluate",
    "protocol": "evaluate",
    "ablation": "generate",  # the teacher-student strategies: a node of task=ts_curriculum (ablation@task.ablation)
}
# options that only make sense together with others
EXTRA_OVERRIDES = {("student", "hub"): ["student.name_or_path=org/model"],
                   ("student", "local"): ["student.name_or_path=/models/x"],
                   ("policy", "openai"): ["policy.model=served-model"],
                   ("trainer", "dpo"): ["trainer.pairs_path=/data/pairs.jsonl"],
                   ("teacher", "openai"): ["teacher.model=served-model"],
                   ("experiment", "demo_act"): ["sft_policy=/runs/sft/policy", "act_pairs_dir=/runs/act_pairs"]}
# training-only experiments: they select a trainer, which evaluate.py has no group for
TRAIN_ONLY = {("experiment", "demo_act")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_resolved(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        if "output_dir" in cfg:
            cfg.output_dir = "/tmp/clarifylab-compose-test"  # normally the Hydra run dir
        container = {key:
                     _resolve(cfg, key) for key in cfg if key != "hydra"}
    return cfg, container


def _resolve(cfg, key):
    node = cfg[key]
    return OmegaConf.to_container(node, resolve=True, throw_on_missing=True) if OmegaConf.is_config(node) else node


def targets(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append(node["_target_"])
        for value in node.values():
            found += targets(value)
    elif isinstance(node, list):
        for value in node:
            found += targets(value)
    return found


CASES = [(group, option) for group in GROUPS for option in options(group)]


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} is empty"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_resolves(group, option):
    overrides = [f"{group}={option}"] + EXTRA_OVERRIDES.get((group, option), [])
    if group == "ablation":
        overrides = ["task=ts_curriculum", f"ablation@task.ablation={option}"]
    if GROUPS[group] in ("generate", "evaluate"):
        cfg, container = compose_resolved(GROUPS[group], overrides)
    else:
        cfg, container = compose_resolved("train", overrides)
        if (group, option) not in TRAIN_ONLY:
            compose_resolved("evaluate", [o for o in overrides
                                          if not o.startswith(("trainer", "teacher", "act_ablation"))])
    for target in targets(container):
        get_object(target)  # importable
    if GROUPS[group] == "train":
        get_method(container["trainer"]["recipe"])
    assert cfg.hydra.runtime.choices["ablation@task.ablation" if group == "ablation" else group] == option
    literals, named = own_values(group, option)
    composed = OmegaConf.create(container)
    if group == "ablation":  # checked where it is composed: under task
        composed = OmegaConf.create({"ablation": container["task"]["ablation"]})
    if not named:  # an empty option (logger=none): the group node is empty
        assert not container.get(group), container.get(group)
    overridden = {o.split("=", 1)[0] for o in overrides}
    for key in named:
        assert OmegaConf.select(composed, key, default="<absent>") != "<absent>", key
    for key, value in literals.items():
        if key not in overridden:
            assert OmegaConf.select(composed, key) == value, key


def own_values(group: str, option: str) -> tuple[dict[str, object], list[str]]:
    """What conf/<group>/<option>.yaml sets: its literal (non-interpolated, non-mandatory) leaves and the full keys of
    all its leaves, as paths in the composed config (its package: the group, or the root for ``_global_`` files)."""
    path = CONF / group / f"{option}.yaml"
    package = "" if "@package _global_" in path.read_text() else group
    literals: dict[str, object] = {}
    named: list[str] = []

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            full = f"{prefix}.{key}" if prefix else key
            if key == "defaults" and prefix == package:
                continue
            if isinstance(value, dict) and value:
                walk(value, full)
                continue
            named.append(full)
            if not (isinstance(value, str) and ("${" in value or value == "???")):
                literals[full] = value

    walk(OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}, package)
    return literals, named


def test_every_group_dir_is_covered():
    on_disk = {p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"}
    assert on_disk == set(GROUPS)


LAUNCHER_TARGETS = {
    "basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "joblib_local": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHER_TARGETS))
def test_launchers_compose(launcher):
    cfg, _ = compose_resolved("train", [f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_ == LAUNCHER_TARGETS[launcher]
    get_object(cfg.hydra.launcher._target_)
    if launcher == "joblib_local":
        assert cfg.hydra.launcher.n_jobs == 2
    if launcher == "slurm":
        assert (cfg.hydra.launcher.timeout_min, cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.tasks_per_node) \
            == (720, 1, 1)


def test_data_dir_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CLARIFYLAB_DATA_DIR", str(tmp_path))
    _, container = compose_resolved("train", [])
    assert container["paths"]["data_dir"] == str(tmp_path)
    monkeypatch.delenv("CLARIFYLAB_DATA_DIR")
    _, container = compose_resolved("train", [])
    assert Path(container["paths"]["data_dir"]) == PROJECT_ROOT / ".." / "shared" / "data"
