"""Chapter 5's coding exercise: the bottleneck-adapter checker accepts the hidden solution and rejects the
scaffold and plausible wrong answers."""

from pathlib import Path

import nbformat
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.adapters import check_bottleneck

CHAPTER_5 = Path(__file__).resolve().parents[1] / "notebooks" / "05_task_adapters.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 5 whose source contains ``marker``."""
    return code_cell(CHAPTER_5.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "check_bottleneck": check_bottleneck}
    exec(compile(source, "chapter 5 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source)["bottleneck_adapter"]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check_bottleneck(solution) is True


def test_the_checker_cell_imports_from_the_package():
    cells = [c for c in nbformat.read(CHAPTER_5, as_version=4).cells if c.cell_type == "code"
             and c.source.startswith("from hft_lessons.exercises.adapters import check_bottleneck")]
    assert len(cells) == 1 and cells[0].metadata["tags"] == ["nbval-ignore-output"]


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell('raise NotImplementedError("your code here")').source)["bottleneck_adapter"]
    assert check_bottleneck(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def test_plausible_wrong_answers_get_a_useful_line(capsys):
    def no_residual(h, dw, db, uw, ub):
        return torch.relu(h @ dw.T + db) @ uw.T + ub

    def no_relu(h, dw, db, uw, ub):
        return h + (h @ dw.T + db) @ uw.T + ub

    def untransposed(h, dw, db, uw, ub):
        return h + torch.relu(h @ dw + db) @ uw + ub

    cases = {
        no_residual: ("wrong: the output at initialisation (up = 0) differs", "is the input added back?"),
        no_relu: ("wrong: the output with trained (non-zero) weights differs", "where does the ReLU go?"),
        untransposed: ("wrong: raised RuntimeError", ""),
        (lambda *args: None): ("wrong: the function returned None", ""),
    }
    for fn, (start, hint) in cases.items():
        assert check_bottleneck(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start) and hint in line, line
