"""Chapter 10's exercise: the hidden solution passes the checker; the scaffold and wrong counts do not."""

from pathlib import Path

import nbformat

from hft_lessons.exercises.multitask_hybrid import check_added_parameters
from hft_lessons.multitask_hybrid import TaskAdapters

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "10_multitask_hybrid.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 10 whose source contains ``marker``."""
    cells = [c for c in nbformat.read(CHAPTER, as_version=4).cells
             if c.cell_type == "code" and marker in c.source and "def added_parameters" in c.source]
    assert len(cells) == 1, f"expected one code cell with {marker!r}, found {len(cells)}"
    return cells[0]


def _run(source: str) -> dict:
    namespace = {"check_added_parameters": check_added_parameters, "TaskAdapters": TaskAdapters}
    exec(compile(source, "chapter 10 cell", "exec"), namespace)
    return namespace


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.metadata["cellView"] == "form" and cell.metadata["jupyter"] == {"source_hidden": True}
    assert {"hide-input", "nbval-check-output"} <= set(cell.metadata["tags"])
    solution = _run(cell.source)["added_parameters"]  # the cell itself runs the checker once
    assert _lines(capsys) == ["right"]
    assert check_added_parameters(solution) is True


def test_the_scaffold_is_not_accepted(capsys):
    scaffold = _run(_cell("raise NotImplementedError").source)["added_parameters"]
    assert check_added_parameters(scaffold) is False
    assert _lines(capsys) == ["wrong: sst2: not implemented yet"]


def test_wrong_counts_get_a_hint_not_the_answer(capsys):
    def adapters_only(model, task):
        return sum(p.numel() for m in model.backbone.modules() if isinstance(m, TaskAdapters)
                   and task in m.adapters for p in m.adapters[task].parameters())

    def every_task(model, task):
        return adapters_only(model, task) * 3 + sum(p.numel() for p in model.head[task].parameters())

    def first_layer_only(model, task):
        slot = next(m for m in model.backbone.modules() if isinstance(m, TaskAdapters))
        return (sum(p.numel() for p in slot.adapters[task].parameters())
                + sum(p.numel() for p in model.head[task].parameters()))

    hints = {adapters_only: "the head is missing", every_task: "count only this task's adapters",
             first_layer_only: "some adapters are missing", (lambda m, t: 2.0): "return an int"}
    for fn, hint in hints.items():
        assert check_added_parameters(fn) is False
        (line,) = _lines(capsys)
        assert line.startswith("wrong: sst2") and hint in line, line
