"""Chapter 0's coding exercise: the hidden mean-pooling solution passes; scaffold and wrong answers fail."""

from pathlib import Path

import nbformat
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.pooling import check_mean_pool

CHAPTER_0 = Path(__file__).resolve().parents[1] / "notebooks" / "00_how_to_use_this_book.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 0 whose source contains ``marker``."""
    return code_cell(CHAPTER_0.name, marker)


def _run(source: str) -> dict:
    namespace = {"torch": torch, "check_mean_pool": check_mean_pool}
    exec(compile(source, "chapter 0 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source)["mean_pool"]
    assert _only_line(capsys) == "right"
    assert check_mean_pool(solution) is True


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell("raise NotImplementedError").source)["mean_pool"]
    assert check_mean_pool(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"
    assert _cell("import check_mean_pool").metadata["tags"] == ["nbval-ignore-output"]


def test_wrong_poolings_get_a_hint(capsys):
    assert check_mean_pool(lambda hidden, mask: hidden.mean(1)) is False  # padding counted
    line = _only_line(capsys)
    assert line.startswith("wrong: the pooled batch differs from the reference by up to"), line
    assert line.endswith("only the padded sentences differ: do padding positions count?")
    assert check_mean_pool(lambda hidden, mask: hidden[:, 0]) is False  # the first token ([CLS]) instead
    assert _only_line(capsys).endswith("sentences [0, 1] differ (sentence lengths [7, 4, 1] of 7 positions)")
    assert check_mean_pool(lambda hidden, mask: hidden.sum(1)) is False
    assert _only_line(capsys).startswith("wrong: the pooled batch differs")
    assert check_mean_pool(lambda hidden, mask: hidden) is False
    assert _only_line(capsys) == "wrong: the pooled batch should have shape (3, 16), got (3, 7, 16)"
