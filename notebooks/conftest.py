"""nbval runs a notebook as one test: a notebook whose `smoke` run takes over ~20 s on 2 cores is `slow`."""

import os
import tempfile

import pytest

# the kernels nbval starts inherit these: no progress bars in the outputs it compares (as in course_time's
# stored ones), and a run cache of this test session's own, never the user's
os.environ["HFT_PROGRESS"] = "off"
os.environ["HFT_RUN_CACHE"] = tempfile.mkdtemp(prefix="hft-nbval-runs-")

# measured on 2 idle cores (pytest --durations, December 2026): TensorFlow/Keras and the HF Trainer, ~22 s
SLOW_NOTEBOOKS = {"08_three_implementations.ipynb"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every cell of a slow notebook `slow`, so that `-m "not slow"` skips the notebook whole."""
    for item in items:
        if item.path.name in SLOW_NOTEBOOKS:
            item.add_marker(pytest.mark.slow)
