"""Chapter 6's coding exercise: the LoRA-merge checker (against peft's merge_and_unload) accepts the hidden
solution and rejects the scaffold and plausible wrong answers."""

from pathlib import Path

import nbformat
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.lora import check_lora_merge

CHAPTER_6 = Path(__file__).resolve().parents[1] / "notebooks" / "06_delta_tuning.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 6 whose source contains ``marker``."""
    return code_cell(CHAPTER_6.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "check_lora_merge": check_lora_merge}
    exec(compile(source, "chapter 6 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source)["merge_lora"]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check_lora_merge(solution) is True


def test_the_checker_cell_is_tagged():
    cell = _cell("from hft_lessons.exercises.lora import check_lora_merge")
    assert cell.metadata["tags"] == ["nbval-ignore-output"]


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell('raise NotImplementedError("your code here")').source)["merge_lora"]
    assert check_lora_merge(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def test_plausible_wrong_answers_get_a_useful_line(capsys):
    def scaled_by_alpha(W, A, B, alpha):
        return W + alpha * (B @ A)

    def forgot_the_base(W, A, B, alpha):
        return (alpha / A.shape[0]) * (B @ A)

    def in_place(W, A, B, alpha):
        return W

    cases = {
        scaled_by_alpha: ("wrong: the merged weight with r = 4, alpha = 8 differs", "look at the scaling"),
        forgot_the_base: ("wrong: the merged weight with r = 4, alpha = 8 differs", ""),
        in_place: ("wrong: the merged weight", "ΔW was not added"),
        (lambda W, A, B, alpha: W + A.T @ B.T): ("wrong: raised RuntimeError", ""),
        (lambda *args: None): ("wrong: the function returned None", ""),
    }
    for fn, (start, hint) in cases.items():
        assert check_lora_merge(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start) and hint in line, line
