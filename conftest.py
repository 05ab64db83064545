"""Test-wide settings: the fast ``smoke`` profile, on the CPU, quietly, one thread per xdist worker."""

import os

os.environ["HFT_PROFILE"] = os.environ.get("HFT_TEST_PROFILE", "smoke")
# The tests build their tensors on the CPU and compare against CPU references at tight tolerances, and the
# notebooks' stored outputs are CPU outputs, so the suite keeps the trainer and the notebooks (which inherit
# this) on the CPU even where a GPU exists. HFT_TEST_DEVICE=cuda runs it on the GPU instead.
os.environ["HFT_DEVICE"] = os.environ.get("HFT_TEST_DEVICE", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config: object) -> None:
    """pytest-xdist (`-n auto` in pyproject.toml) runs a worker per core: give each worker one thread."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    # measured on 2 cores: two workers with two threads each took 1.6x as long as with one each
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = "1"  # the nbval kernels and the command-line subprocesses inherit these
    import torch  # here, not at the top: the controller process never needs torch

    torch.set_num_threads(1)
