"""ModelSpec / LoraSpec validation, dict round trip and Hydra instantiation of conf/student/*."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarifylab.errors import ConfigError
from clarifylab.models.spec import LoraSpec, ModelSpec

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "foo"}, "student.source='foo' is not one of ['hub', 'local', 'smollm2_gguf', 'tiny']"),
        ({"dtype": "float64"}, "student.dtype='float64' is not one of"),
        ({"source": "hub"}, "student.name_or_path must be set to a Hub model id"),
        ({"source": "local", "name_or_path": ""}, "student.name_or_path must be set to a model directory"),
        ({"source": "tiny", "trust_remote_code": True}, "student.trust_remote_code=true only applies"),
        ({"seed": "zero"}, "student.seed='zero' must be an integer"),
        ({"source": "bar", "role": "teacher"}, "teacher.source='bar'"),
        ({"lora": {"r": 0}}, "student.lora.r=0 must be a positive integer"),
        ({"lora": {"dropout": 1.0}}, "student.lora.dropout=1.0 must be in [0, 1)"),
        ({"lora": {"bias": "some"}}, "student.lora.bias='some' is not one of ['none', 'all', 'lora_only']"),
        ({"lora": {"target_modules": []}}, "student.lora.target_modules is empty"),
        ({"lora": {"target_modules": [1, 2]}}, "student.lora.target_modules=[1, 2] must be a list"),
        ({"lora": 5}, "student.lora must be a mapping of LoRA options or null"),
    ],
)
def test_invalid_options_raise_config_error_naming_the_option(kwargs, message):
    with pytest.raises(ConfigError) as error:
        ModelSpec(**kwargs)
    assert message in str(error.value)


def test_lora_mapping_becomes_lora_spec_and_single_module_string_becomes_list():
    spec = ModelSpec(source="tiny", lora={"r": 4, "alpha": 8, "target_modules": "q_proj"})
    assert spec.lora == LoraSpec(r=4, alpha=8, target_modules=["q_proj"])
    assert spec.uses_lora
    assert not ModelSpec(lora={"enabled": False}).uses_lora
    assert not ModelSpec(lora=None).uses_lora


def test_dict_round_trip_and_unknown_keys_are_rejected():
    spec = ModelSpec(source="hub", name_or_path="org/model", dtype="bfloat16", lora=LoraSpec(r=8), seed=2)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["lora"]["r"] == 8
    with pytest.raises(ConfigError, match=r"unknown options \['colour'\]"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": "red"})


@pytest.mark.parametrize("name", ["tiny", "smollm2", "local", "hub"])
def test_student_configs_instantiate_with_hydra(name):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF / "student" / f"{name}.yaml")
    if OmegaConf.is_missing(cfg, "name_or_path"):
        cfg.name_or_path = "some/model"
    spec = instantiate(cfg)
    assert isinstance(spec, ModelSpec) and isinstance(spec.lora, LoraSpec)
    assert isinstance(spec.lora.target_modules, list) and all(isinstance(m, str) for m in spec.lora.target_modules)
    assert spec.source == {"tiny": "tiny", "smollm2": "smollm2_gguf", "local": "local", "hub": "hub"}[name]
