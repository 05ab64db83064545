"""Test-wide settings: notebooks and tests run in the fast ``smoke`` profile, on the CPU, quietly."""

import os

os.environ["HFT_PROFILE"] = os.environ.get("HFT_TEST_PROFILE", "smoke")
# The tests build their tensors on the CPU and compare against CPU references at tight tolerances, and the
# notebooks' stored outputs are CPU outputs, so the suite keeps the trainer and the notebooks (which inherit
# this) on the CPU even where a GPU exists. HFT_TEST_DEVICE=cuda runs it on the GPU instead.
os.environ["HFT_DEVICE"] = os.environ.get("HFT_TEST_DEVICE", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
