"""Runtime helpers shared by every chapter: seeding, device choice, Colab detection, setup."""

from __future__ import annotations

import ctypes
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .profiles import Profile, get_profile

__all__ = ["quiet_libraries", "seed_everything", "seed_worker", "pick_device", "in_colab", "Setup", "setup",
           "reuse_freed_memory"]


def quiet_libraries() -> None:
    """Silence library chatter (weight-loading bars, info logs, known warnings) so outputs stay readable."""
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
    """Pick CUDA, then MPS (only on torch >= 2.9), then CPU; ``prefer`` or ``HFT_DEVICE`` overrides."""
    prefer = prefer or os.environ.get("HFT_DEVICE")
    if prefer:
        allowed = ("cpu", "cuda", "mps")
        if prefer.split(":")[0] not in allowed:
            raise ValueError(f"unknown device {prefer!r}; allowed: {', '.join(allowed)}")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and _torch_at_least(2, 9):
        return torch.device("mps")
    return torch.device("cpu")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers in glibc's malloc.h
# While training: blocks up to _KEEP[1] come from the heap (bigger ones, like evaluation's attention maps, are still
# mapped, so they cannot fragment it), and up to _KEEP[0] of free memory at its top is kept for the next step.
_KEEP = (1 << 30, 64 << 20)  # (trim, mmap)
_AFTER = (64 << 20, 32 << 20)  # afterwards: the limits glibc's own adaptive rule grows to (trim, mmap)
_reuse_depth, _reuse_active = 0, False


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (the only one with ``mallopt``/``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    needed = ("gnu_get_libc_version", "mallopt", "malloc_trim")  # musl and others lack some of them
    return libc if all(hasattr(libc, name) for name in needed) else None


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Keep freed blocks in glibc's heap while the block runs, then hand them back to the OS; yields if it could.

    By default glibc serves every block over 32 MiB (and, until its threshold adapts, many smaller ones) with a
    fresh ``mmap`` and returns it on ``free``. A CPU training step frees and re-allocates the same activations
    and gradients (the 30,522 x 384 word-embedding gradient alone is 45 MiB), so after each long batch the
    kernel unmaps memory that the next long batch makes it map and zero-fill again, page by page. For the
    length of a run, blocks up to 64 MiB come from the heap and up to 1 GiB of free heap is kept, so the
    allocator reuses them; blocks over 64 MiB (evaluation's attention maps, say) are still mapped, so they
    cannot fragment the heap. The numbers computed are bit-for-bit the same. On exit the free memory is
    trimmed, so a notebook that trains several models in turn measures each one's memory from a clean start.
    Elsewhere (macOS, musl, Windows) it does nothing and yields False.
    """
    global _reuse_depth, _reuse_active
    if _reuse_depth == 0:  # only the outermost block changes the allocator
        libc = _glibc()
        if libc is not None:
            if not libc.mallopt(_M_MMAP_THRESHOLD, _KEEP[1]):
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER[1])  # glibc builds that cap the threshold at 32 MiB
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP[0])
        _reuse_active = libc is not None
    else:
        libc = None
    _reuse_depth += 1
    try:
        yield _reuse_active
    finally:
        _reuse_depth -= 1
        if libc is not None:
            libc.mallopt(_M_TRIM_THRESHOLD, _AFTER[0])
            libc.mallopt(_M_MMAP_THRESHOLD, _AFTER[1])
            libc.malloc_trim(0)


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
