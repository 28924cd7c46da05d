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


@pytest.fixture(scope="session")
def bf16_sft_policy():
    """``bf16_sft_policy(root, relative_delta=1e-3) -> (policy_dir, tokenizer)``: a bf16 tiny "SFT" policy
    (LoRA r=4 on q/v, dropout 0.1) whose adapter moves each target weight by ``relative_delta`` of its norm (paper
    scale: lr 5e-7), saved under ``root/sft`` as train.py saves policies (tests of the unmerged adapter stack)."""

    def build(root, relative_delta: float = 1e-3):
        import torch

        from clarifylab.models import LoraSpec, ModelSpec, load_model_and_tokenizer, prepare_for_training, save_policy

        lora = LoraSpec(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"])
        spec = ModelSpec(source="tiny", seed=3, dtype="bfloat16", lora=lora)
        base, tokenizer = load_model_and_tokenizer(spec, root)
        model = prepare_for_training(base, spec)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for module in model.modules():
                if hasattr(module, "lora_B") and "default" in module.lora_B:
                    a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
                    a.copy_(torch.randn(a.shape, generator=generator))
                    b.copy_(torch.randn(b.shape, generator=generator))
                    delta = module.get_delta_weight("default").float()
                    b.mul_(relative_delta * module.base_layer.weight.float().norm() / delta.norm())
        return save_policy(model.eval(), tokenizer, spec, root / "sft"), tokenizer

    return build
