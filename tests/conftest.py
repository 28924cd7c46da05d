"""Test session setup: offline, one thread, W&B offline (docs/ENVIRONMENT.md)."""

import os

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_key, _value)

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def build_spider_tree():
    """``build_spider_tree(root) -> Path``: writes the small native-layout Spider tree of
    tests/fixtures/spider_small (JSON files + sqlite DBs built from schema.sql) under ``root``."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "spider_small_fixture", Path(__file__).parent / "fixtures" / "spider_small" / "make_spider.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_spider_tree
