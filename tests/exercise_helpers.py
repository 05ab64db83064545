"""Shared steps of the exercise tests: find a chapter's cell, run it, read the one line a checker prints."""

from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTION_TITLE = "#@title Solution (run to check; double-click to show)"


def code_cell(notebook: str, marker: str) -> nbformat.NotebookNode:
    """The one code cell of ``notebook`` whose source contains ``marker``."""
    cells = [c for c in nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
             if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{notebook}: expected one code cell with {marker!r}, found {len(cells)}"
    return cells[0]


def run_cell(cell: nbformat.NotebookNode, namespace: dict) -> dict:
    """Exec a cell's source in ``namespace`` (the names the chapter has defined by then); return it."""
    exec(compile(cell.source, "notebook cell", "exec"), namespace)
    return namespace


def assert_hidden(cell: nbformat.NotebookNode) -> None:
    """The cell is collapsed in Colab (form), JupyterLab (source_hidden) and the book (hide-input)."""
    assert cell.metadata["cellView"] == "form" and cell.metadata["jupyter"] == {"source_hidden": True}
    assert "hide-input" in cell.metadata["tags"] and "nbval-check-output" in cell.metadata["tags"]


def only_line(capsys) -> str:
    """The single line printed since the last read."""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]
