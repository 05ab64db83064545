"""Runtime helpers shared by every chapter: seeding, device choice, Colab detection, setup."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .devices import cpu_requested
from .profiles import Profile, get_profile

__all__ = ["OFF_VALUES", "switched_off", "quiet_libraries", "seed_everything", "seed_worker", "pick_device",
           "in_colab", "Setup", "setup",
           "synchronize", "best_time"]


OFF_VALUES = ("off", "0", "no", "none", "false")  # what turns an HFT_* switch off


def switched_off(variable: str) -> bool:
    """True when the environment variable ``variable`` holds one of ``OFF_VALUES`` (any case)."""
    return os.environ.get(variable, "").strip().lower() in OFF_VALUES


def quiet_libraries() -> None:
    """Silence library chatter (weight-loading bars, info logs, known warnings) so outputs stay readable."""
    # imported here: runtime itself needs neither library, and loading transformers takes seconds
    import warnings

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator for DataLoader shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """Seed a DataLoader worker from torch's per-worker seed (pass as ``worker_init_fn``)."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _torch_at_least(major: int, minor: int) -> bool:
    parts = torch.__version__.split("+")[0].split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def pick_device(prefer: str | None = None) -> torch.device:
    """Pick CUDA, then MPS (only on torch >= 2.9), then CPU; ``prefer``, ``HFT_DEVICE`` or ``--cpu``
    overrides."""
    prefer = prefer or os.environ.get("HFT_DEVICE")
    if prefer:
        allowed = ("cpu", "cuda", "mps")
        if prefer.split(":")[0] not in allowed:
            raise ValueError(f"unknown device {prefer!r}; allowed: {', '.join(allowed)}")
        return torch.device(prefer)
    if cpu_requested():
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and _torch_at_least(2, 9):
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait until the work queued on a CUDA ``device`` has finished (CUDA runs asynchronously); no-op
    elsewhere."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], repeats: int = 5, device: torch.device | str | None = None) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, in seconds, after one warm-up; on CUDA it waits for
    each."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


@dataclass(frozen=True)
class Setup:
    """What a notebook's setup cell decided: device, profile and seed."""

    device: torch.device
    profile: Profile
    seed: int
    colab: bool

    def __str__(self) -> str:
        return (
            f"device: {self.device} | profile: {self.profile.name} | seed: {self.seed} | "
            f"colab: {self.colab} | torch {torch.__version__}"
        )


def setup(seed: int = 0, profile: str | None = None, device: str | None = None) -> Setup:
    """Seed everything, pick the device and the run profile, and return them together."""
    quiet_libraries()
    seed_everything(seed)
    prof = get_profile(profile)
    dev = pick_device(device)
    return Setup(device=dev, profile=prof, seed=seed, colab=in_colab())
