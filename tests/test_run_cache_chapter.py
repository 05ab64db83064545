"""A chapter's outputs are the same whether its runs are trained or loaded from the run cache.

Chapter 5 is executed three times in the `smoke` profile: with an empty cache (it trains and stores its two
adapter runs), again with that cache (it loads them), and with the cache off. Every text output of every cell
must be the same in the first two runs, apart from the one line per reused run that says so; the accuracies
must be the same in all three (the run with the cache off trains again, so only its times differ).
"""

import os
import re
from pathlib import Path

import pytest

from hft_lessons.run_cache import REUSED

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "05_task_adapters.ipynb"


def _execute(cache: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Execute the chapter in smoke with HFT_RUN_CACHE=cache; each code cell's text outputs as one string."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("HFT_RUN_CACHE", cache)
    monkeypatch.setenv("HFT_PROFILE", "smoke")
    monkeypatch.setenv("HFT_PROGRESS", "off")
    nb = nbformat.read(CHAPTER, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            elif "text/plain" in out.get("data", {}) and "image/png" not in out["data"]:
                parts.append(out["data"]["text/plain"])
        texts.append("".join(parts))
    return texts


def _without_reuse_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(REUSED))


def _accuracies(texts: list[str]) -> list[str]:
    return [m for t in texts for m in re.findall(r"epoch \d+: accuracy [0-9.]+", t)]


@pytest.mark.slow
def test_stored_outputs_are_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    cache = str(tmp_path / "runs")
    trained = _execute(cache, monkeypatch)
    assert os.path.isdir(cache) and os.listdir(cache), "the first run stored nothing"
    loaded = _execute(cache, monkeypatch)
    assert sum(line.startswith(REUSED) for t in loaded for line in t.splitlines()) == 2
    assert not any(REUSED in t for t in trained)
    assert [_without_reuse_lines(t) for t in loaded] == [_without_reuse_lines(t) for t in trained]
    uncached = _execute("off", monkeypatch)
    assert len(_accuracies(trained)) >= 2  # one epoch per run in smoke
    assert _accuracies(uncached) == _accuracies(trained)
