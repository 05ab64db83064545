"""Chapter 9's coding exercise: the temperature-sampling checker accepts the hidden solution and rejects the
scaffold and plausible wrong answers."""

from pathlib import Path

import nbformat
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.sampling import check_temperature_sampling

CHAPTER_9 = Path(__file__).resolve().parents[1] / "notebooks" / "09_multitask.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 9 whose source contains ``marker``."""
    return code_cell(CHAPTER_9.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the checker imported, as the chapter's checker cell does."""
    namespace = {"check_temperature_sampling": check_temperature_sampling}
    exec(compile(source, "chapter 9 cell", "exec"), namespace)
    return namespace


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    namespace = _run(cell.source)  # the cell itself runs the checker
    assert _only_line(capsys) == "right" and namespace["passed"] is True
    assert cell.source.rstrip().endswith("passed = check_temperature_sampling(temperature_probabilities)")


def test_the_checker_cell_imports_from_the_package():
    cell = _cell("from hft_lessons.exercises.sampling import check_temperature_sampling")
    assert cell.metadata["tags"] == ["nbval-ignore-output"]


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell('raise NotImplementedError("your code here")').source)["temperature_probabilities"]
    assert check_temperature_sampling(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def test_exponent_t_instead_of_one_over_t_is_wrong_with_a_hint(capsys):
    def power_t(sizes, T):
        weights = [n**T for n in sizes]
        return [w / sum(weights) for w in weights]

    assert check_temperature_sampling(power_t) is False
    line = _only_line(capsys)
    assert line.startswith("wrong: sizes [67349, 14041, 4961], T = 2: p differs from the reference"), line
    assert "look at the exponent" in line


def test_unnormalised_weights_are_wrong(capsys):
    assert check_temperature_sampling(lambda sizes, T: [n ** (1 / T) for n in sizes]) is False
    line = _only_line(capsys)
    assert "sum to" in line and "not 1" in line, line


def test_broken_functions_get_one_wrong_line(capsys):
    cases = {
        lambda sizes, T: None: "wrong: sizes [67349, 14041, 4961], T = 2: returned None",
        lambda sizes, T: [1.0]: "wrong: sizes [67349, 14041, 4961], T = 2: got 1 probabilities, expected",
        lambda sizes, T: 1 / 0: "wrong: sizes [67349, 14041, 4961], T = 2: raised ZeroDivisionError",
        lambda sizes, T: 0.5: "wrong: sizes [67349, 14041, 4961], T = 2: returned float",
    }
    for fn, start in cases.items():
        assert check_temperature_sampling(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start), line
