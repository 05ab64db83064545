"""The exercise checkers accept the chapters' hidden solutions and reject scaffolds and wrong answers."""

from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line
from torch import nn

from hft_lessons.exercises import check_sgd_momentum

CHAPTER_4 = Path(__file__).resolve().parents[1] / "notebooks" / "04_finetuning.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 4 whose source contains ``marker``."""
    return code_cell(CHAPTER_4.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "F": F, "nn": nn, "check_sgd_momentum": check_sgd_momentum}
    exec(compile(source, "chapter 4 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert "hide-input" in cell.metadata["tags"] and "nbval-check-output" in cell.metadata["tags"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source)["sgd_momentum_step"]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check_sgd_momentum(solution) is True
    assert check_sgd_momentum(solution, lr=0.1, momentum=0.5) is True


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell("raise NotImplementedError").source)["sgd_momentum_step"]
    assert check_sgd_momentum(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def _plain_sgd(W, b, X, y, lr, momentum, buffers=None):
    """SGD that forgets the momentum: right on step 1 (buffer = gradient), wrong on step 2."""
    p = (X @ W.T + b).softmax(-1)
    dz = (p - F.one_hot(y, W.shape[0]).float()) / X.shape[0]
    return W - lr * dz.T @ X, b - lr * dz.sum(0), None


def test_plain_sgd_is_wrong_at_step_two(capsys):
    assert check_sgd_momentum(_plain_sgd) is False
    line = _only_line(capsys)
    assert line.startswith("wrong: step 2: W differs from torch.optim.SGD(momentum=0.9) by up to"), line
    assert "step 1 matched" in line


def test_broken_functions_get_one_wrong_line(capsys):
    cases = {
        lambda *args: None: "wrong: step 1 returned None",
        lambda *args: (args[0], args[1]): "wrong: step 1 returned tuple; return three things",
        lambda *args: 1 / 0: "wrong: step 1 raised ZeroDivisionError",
        lambda W, b, *rest: (W.T, b, None): "wrong: step 1: W should be a tensor of shape (3, 10)",
    }
    for fn, start in cases.items():
        assert check_sgd_momentum(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start), line
