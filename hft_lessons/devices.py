"""Which device this process computes on, as the environment asks: below both profiles and runtime."""

from __future__ import annotations

import os

__all__ = ["cpu_requested", "uses_cuda"]


def cpu_requested() -> bool:
    """True when ``HFT_DEVICE=cpu`` or ``accelerate launch --cpu`` (``ACCELERATE_USE_CPU``) asks for a CPU."""
    return (os.environ.get("HFT_DEVICE", "").split(":")[0] == "cpu"
            or os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes"))


def uses_cuda() -> bool:
    """True when this process computes on CUDA: a GPU is there and nothing asks for the CPU."""
    import torch  # here, not at the top: the command line reads profiles (and this) before it loads torch

    return torch.cuda.is_available() and not cpu_requested()
