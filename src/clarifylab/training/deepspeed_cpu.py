"""DeepSpeed ZeRO for Lightning on GPUs *and* on CPU processes (gloo), picked from ``hardware.accelerator``.

Lightning's ``DeepSpeedStrategy`` only runs on CUDA. On CPU three things stop it, and
:class:`CPUDeepSpeedStrategy` works around each: ``setup_environment`` refuses non-CUDA accelerators (skipped),
``setup_distributed`` validates a device *index* that CPU devices lack (skipped), and ``deepspeed.initialize``
gets ``device_rank=None`` from ``torch.device("cpu").index`` (passed as ``-1``, DeepSpeed's "no device index").

Used from ``conf/hardware/deepspeed_zero{2,3}.yaml`` through :func:`deepspeed_strategy`
(``hardware.strategy._target_``), so one config serves both machines::

    python train.py hardware=deepspeed_zero2                                   # GPUs, bf16
    python train.py hardware=deepspeed_zero2 hardware.accelerator=cpu hardware.precision=32-true
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytorch_lightning.strategies import DeepSpeedStrategy

from clarifylab.errors import ConfigError

log = logging.getLogger(__name__)

SHM_COMM_OP = "deepspeed_shm_comm"  # DeepSpeed's JIT-compiled shared-memory all-reduce for CPU ranks


@contextmanager
def _cpu_device_rank() -> Iterator[None]:
    """While active, ``deepspeed.initialize(args=Namespace(device_rank=None))`` is called with
    ``device_rank=-1`` (CPU devices have no index; DeepSpeed's engine compares it with ``>= 0``)."""
    import deepspeed

    original = deepspeed.initialize

    def initialize(*args: Any, **kwargs: Any) -> Any:
        namespace = kwargs.get("args")
        if namespace is not None and getattr(namespace, "device_rank", 0) is None:
            namespace.device_rank = -1
        return original(*args, **kwargs)

    deepspeed.initialize = initialize
    try:
        yield
    finally:
        deepspeed.initialize = original


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` for CPU processes: gloo process group, no CUDA checks, ``device_rank=-1``.

    Args:
        shm_comm: build DeepSpeed's shared-memory all-reduce op (a C++ JIT compile of ~100 s on first
            use, cached in ``TORCH_EXTENSIONS_DIR``); ``False`` leaves all collectives to gloo.
        **kwargs: ``DeepSpeedStrategy`` arguments (``stage``, ``offload_optimizer``, ...).
    """

    strategy_name = "deepspeed_cpu"

    def __init__(self, shm_comm: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("process_group_backend", "gloo")
        super().__init__(**kwargs)
        self.shm_comm = shm_comm

    def setup_environment(self) -> None:
        # DeepSpeedStrategy.setup_environment only adds the CUDA check; run its parent's.
        super(DeepSpeedStrategy, self).setup_environment()

    def setup_distributed(self) -> None:
        from lightning_fabric.utilities.seed import reset_seed

        if not self.shm_comm:
            import deepspeed.ops

            deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False  # DeepSpeed then skips building the op
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _setup_model_and_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        with _cpu_device_rank():
            return super()._setup_model_and_optimizer(*args, **kwargs)

    def _initialize_deepspeed_inference(self, model: Any) -> None:
        with _cpu_device_rank():
            super()._initialize_deepspeed_inference(model)


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator == "auto":
        import torch

        return not torch.cuda.is_available()
    return False


def deepspeed_strategy(accelerator: str, stage: int, devices: int | str = 1, num_nodes: int = 1,
                       sample_generations: int = 0, extensions_dir: str | None = None, shm_comm: bool = False,
                       **kwargs: Any) -> DeepSpeedStrategy:
    """A ZeRO ``stage`` (1-3) DeepSpeed strategy for ``accelerator``: :class:`CPUDeepSpeedStrategy` for
    ``cpu`` (or ``auto`` without CUDA), Lightning's ``DeepSpeedStrategy`` otherwise.

    Args:
        devices, num_nodes: ``hardware.devices`` / ``hardware.num_nodes``, to tell one process from several.
        sample_generations: ``trainer.sample_generations``. The sample-table callback generates on global rank
            0 only; under ZeRO-3 each forward gathers parameter shards from *every* rank, so with more than one
            process that would hang: refused here with a :class:`ConfigError`.
        extensions_dir: where DeepSpeed's JIT-compiled C++ ops are cached (sets ``TORCH_EXTENSIONS_DIR``
            unless the environment already does), so only the first run pays for the compile.
        shm_comm: CPU only, see :class:`CPUDeepSpeedStrategy`.
        **kwargs: further ``DeepSpeedStrategy`` arguments (``offload_optimizer``, ``offload_parameters``, ...).
    """
    if stage not in (1, 2, 3):
        raise ConfigError(f"hardware.strategy.stage={stage!r} must be a ZeRO stage: 1, 2 or 3")
    several = num_nodes > 1 or not (devices == 1 or devices == "1")
    if stage == 3 and several and sample_generations:
        raise ConfigError(
            f"trainer.sample_generations={sample_generations} with ZeRO-3 on {devices} devices x {num_nodes} nodes "
            "would hang (rank 0 generates alone but ZeRO-3 gathers weights from every rank): set "
            "trainer.sample_generations=0")
    if extensions_dir:
        Path(extensions_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir))
    if _on_cpu(accelerator):
        return CPUDeepSpeedStrategy(stage=stage, shm_comm=shm_comm, **kwargs)
    return DeepSpeedStrategy(stage=stage, **kwargs)
