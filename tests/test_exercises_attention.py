"""Chapters 1 and 2's coding exercises: solutions pass their checkers; scaffolds and wrong answers fail."""

from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from exercise_helpers import only_line as _only_line
from torch import nn

from hft_lessons.exercises.attention import check_causal_attention, check_pre_ln_layer
from hft_lessons.transformer import scaled_dot_product_attention

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTER_1 = NOTEBOOKS / "01_self_attention.ipynb"
CHAPTER_2 = NOTEBOOKS / "02_multihead_attention_and_ffn.ipynb"
CASES = [(CHAPTER_1, "causal_attention", check_causal_attention),
         (CHAPTER_2, "pre_ln_forward", check_pre_ln_layer)]


def _cell(path: Path, marker: str) -> nbformat.NotebookNode:
    """The one code cell of ``path`` whose source contains ``marker``."""
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{path.name}: expected one code cell with {marker!r}, found {len(cells)}"
    return cells[0]


def _run(source: str, check) -> dict:
    """Exec a notebook cell's source with the names its chapter has defined by then."""
    namespace = {"torch": torch, "F": F, "nn": nn, check.__name__: check,
                 "scaled_dot_product_attention": scaled_dot_product_attention}
    exec(compile(source, "notebook cell", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(("path", "name", "check"), CASES, ids=["chapter1", "chapter2"])
def test_the_hidden_solution_is_right(path, name, check, capsys):
    cell = _cell(path, "#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source, check)[name]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check(solution) is True
    capsys.readouterr()


@pytest.mark.parametrize(("path", "name", "check"), CASES, ids=["chapter1", "chapter2"])
def test_the_scaffold_is_wrong_without_raising(path, name, check, capsys):
    scaffold_cell = _cell(path, "raise NotImplementedError")
    assert "tags" not in scaffold_cell.metadata
    scaffold = _run(scaffold_cell.source, check)[name]
    assert check(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"
    checker = _cell(path, f"import {check.__name__}")
    assert checker.metadata["tags"] == ["nbval-ignore-output"]


def _masked(mask_of_n):
    return lambda q, k, v: scaled_dot_product_attention(q, k, v, mask_of_n(q.size(-2)))


def test_causal_attention_wrong_answers_get_a_hint(capsys):
    future = _masked(lambda n: torch.ones(n, n, dtype=torch.bool).triu())  # sees itself and the future
    assert check_causal_attention(future) is False
    line = _only_line(capsys)
    assert line.startswith("wrong: the output differs from the reference by up to"), line
    assert "query position 0 is the first that differs" in line
    strict = _masked(lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1))  # forgets the diagonal
    assert check_causal_attention(strict) is False
    assert "query position 0 is the first that differs" in _only_line(capsys)
    assert check_causal_attention(lambda q, k, v: scaled_dot_product_attention(q, k, v)) is False
    assert _only_line(capsys).endswith("it equals attention with no mask at all: is the mask applied?")
    assert check_causal_attention(lambda q, k, v: q) is False  # right shape, wrong values
    assert _only_line(capsys).startswith("wrong: the output differs")
    assert check_causal_attention(lambda q, k, v: q[..., 0]) is False
    assert _only_line(capsys) == "wrong: the output should have shape (2, 3, 6, 8), got (2, 3, 6)"


def test_pre_ln_wrong_answers_get_a_hint(capsys):
    assert check_pre_ln_layer(lambda layer, x, mask: layer(x, mask)) is False  # the post-LN layer itself
    line = _only_line(capsys)
    assert line.startswith("wrong: the output (real tokens) differs from the reference by up to"), line
    assert line.endswith("it equals the post-LN layer: normalise each sub-layer's input, not the sum")

    def no_residual(layer, x, mask):
        x = layer.attention(layer.attention_norm(x), mask)
        return layer.ffn(layer.ffn_norm(x))

    assert check_pre_ln_layer(no_residual) is False
    assert _only_line(capsys).startswith("wrong: the output (real tokens) differs")
    assert check_pre_ln_layer(lambda layer, x, mask: 1 / 0) is False
    assert _only_line(capsys) == "wrong: raised ZeroDivisionError: division by zero"
    assert check_pre_ln_layer(lambda layer, x, mask: x[0]) is False
    assert _only_line(capsys) == "wrong: the output should have shape (2, 5, 32), got (5, 32)"
