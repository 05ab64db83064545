"""Chapter 7's gated-LoRA checker accepts the hidden solution and rejects the scaffold and wrong answers."""

from pathlib import Path

import nbformat
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.gating import check_gated_lora

CHAPTER_7 = Path(__file__).resolve().parents[1] / "notebooks" / "07_hybrid_finetuning.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 7 whose source contains ``marker``."""
    return code_cell(CHAPTER_7.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "check_gated_lora": check_gated_lora}
    exec(compile(source, "chapter 7 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert "hide-input" in cell.metadata["tags"] and "nbval-check-output" in cell.metadata["tags"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    assert cell.source.rstrip().endswith("passed = check_gated_lora(gated_lora)")
    solution = _run(cell.source)["gated_lora"]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check_gated_lora(solution) is True


def test_the_scaffold_is_wrong_without_raising(capsys):
    cell = _cell("raise NotImplementedError")
    assert "passed" not in cell.source  # the scaffold only defines the function
    scaffold = _run(cell.source)["gated_lora"]
    assert check_gated_lora(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def _ungated(x, W0, b0, A, B, w_gate, b_gate, scaling):
    """Plain LoRA: the gate is forgotten."""
    return x @ W0.T + b0 + (x @ A.T @ B.T) * scaling


def _gate_on_everything(x, W0, b0, A, B, w_gate, b_gate, scaling):
    """The gate scales the frozen projection as well as the update."""
    g = torch.sigmoid(x @ w_gate.T + b_gate)
    return g * (x @ W0.T + b0 + (x @ A.T @ B.T) * scaling)


def _unscaled(x, W0, b0, A, B, w_gate, b_gate, scaling):
    """The gate is right, alpha/r is missing."""
    return x @ W0.T + b0 + torch.sigmoid(x @ w_gate.T + b_gate) * (x @ A.T @ B.T)


def _one_gate_per_sequence(x, W0, b0, A, B, w_gate, b_gate, scaling):
    """The gate averaged over the tokens, as UniPELT's prefix gate is, not per token as LoRA's."""
    g = torch.sigmoid(x @ w_gate.T + b_gate).mean(dim=-2, keepdim=True)
    return x @ W0.T + b0 + g * (x @ A.T @ B.T) * scaling


def test_plausible_wrong_answers_get_a_hint(capsys):
    cases = {
        _ungated: "the LoRA update is not gated",
        _gate_on_everything: "the gate multiplies the frozen projection too",
        _unscaled: "the LoRA update lacks the alpha/r scaling",
        _one_gate_per_sequence: "the gate should be one value per token",
    }
    for fn, hint in cases.items():
        assert check_gated_lora(fn) is False
        line = _only_line(capsys)
        assert line.startswith("wrong: y for an input of shape (5, 16) differs from the reference"), line
        assert hint in line, line


def test_broken_functions_get_one_wrong_line(capsys):
    cases = {
        lambda *args: None: "wrong: your function returned None; return y",
        lambda x, *rest: x: "wrong: y for an input of shape (5, 16) should have shape (5, 12), got (5, 16)",
        lambda *args: 1 / 0: "wrong: raised ZeroDivisionError",
    }
    for fn, start in cases.items():
        assert check_gated_lora(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start), line
