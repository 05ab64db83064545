"""Test-wide settings: notebooks and tests run in the fast ``smoke`` profile, quietly."""

import os

os.environ["HFT_PROFILE"] = os.environ.get("HFT_TEST_PROFILE", "smoke")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
