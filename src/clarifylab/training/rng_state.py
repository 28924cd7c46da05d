"""Capture and restore every random number generator training touches (python, numpy, torch CPU and
CUDA), so a resumed run draws the same dropout masks as the uninterrupted one."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def _numpy_state_as_lists(state: tuple) -> tuple:
    """numpy's legacy RNG state with its key array as a list of ints, so ``torch.load(weights_only=True)``
    can read it back."""
    name, keys, position, has_gauss, cached_gaussian = state
    return (name, [int(key) for key in keys], int(position), int(has_gauss), float(cached_gaussian))


def collect_rng_states() -> dict[str, Any]:
    """The current states of python's ``random``, numpy's global RNG, torch's CPU RNG and (when
    available) every CUDA device's RNG."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state_as_lists(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_states` (missing entries are left alone)."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        name, keys, position, has_gauss, cached_gaussian = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])
