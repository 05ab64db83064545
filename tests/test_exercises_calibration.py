"""Chapter 11's coding exercise: the reliability-curve checker (against scikit-learn) accepts the hidden
solution and rejects the scaffold and plausible wrong answers."""

from pathlib import Path

import nbformat
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons.exercises.calibration import check_calibration_curve

CHAPTER_11 = Path(__file__).resolve().parents[1] / "notebooks" / "11_sentiment_analysis.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 11 whose source contains ``marker``."""
    return code_cell(CHAPTER_11.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "check_calibration_curve": check_calibration_curve}
    exec(compile(source, "chapter 11 cell", "exec"), namespace)
    return namespace


def _binned(prob, gold, n_bins, keep_empty=False, edges=torch.floor):
    """Per-bin (fraction positive, mean probability), optionally keeping empty bins as zeros."""
    bins = edges(prob * n_bins).long().clamp(max=n_bins - 1)
    fraction, mean_prob = [], []
    for b in range(n_bins):
        m = bins == b
        if m.any() or keep_empty:
            fraction.append(gold[m].double().mean().item() if m.any() else 0.0)
            mean_prob.append(prob[m].double().mean().item() if m.any() else 0.0)
    return fraction, mean_prob


def test_the_hidden_solution_is_right(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    namespace = _run(cell.source)  # the cell itself runs the checker
    assert _only_line(capsys) == "right" and namespace["passed"] is True
    assert cell.source.rstrip().endswith("passed = check_calibration_curve(reliability_curve)")


def test_the_checker_cell_imports_from_the_package():
    cell = _cell("from hft_lessons.exercises.calibration import check_calibration_curve")
    assert cell.metadata["tags"] == ["nbval-ignore-output"]


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell('raise NotImplementedError("your code here")').source)["reliability_curve"]
    assert check_calibration_curve(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def test_a_straightforward_binning_agrees_with_scikit_learn(capsys):
    assert check_calibration_curve(_binned) is True
    assert _only_line(capsys) == "right"


def test_keeping_empty_bins_is_wrong(capsys):
    assert check_calibration_curve(lambda p, g, n: _binned(p, g, n, keep_empty=True)) is False
    line = _only_line(capsys)
    assert line.startswith("wrong: case 3 (7 sentences, 10 bins): expected 5 values"), line
    assert "(one per non-empty bin)" in line


def test_rounding_to_the_nearest_bin_is_wrong(capsys):
    assert check_calibration_curve(lambda p, g, n: _binned(p, g, n, edges=torch.round)) is False
    line = _only_line(capsys)
    assert "differs from scikit-learn's by up to" in line and "which bin" in line, line


def test_swapped_results_are_named(capsys):
    assert check_calibration_curve(lambda p, g, n: _binned(p, g, n)[::-1]) is False
    assert "the two results are swapped" in _only_line(capsys)


def test_broken_functions_get_one_wrong_line(capsys):
    cases = {
        lambda p, g, n: None: "wrong: case 1 (400 sentences, 10 bins): return two things",
        lambda p, g, n: 1 / 0: "wrong: case 1 (400 sentences, 10 bins): raised ZeroDivisionError",
        lambda p, g, n: ("a", "b"): "wrong: case 1 (400 sentences, 10 bins): both results should be",
    }
    for fn, start in cases.items():
        assert check_calibration_curve(fn) is False
        line = _only_line(capsys)
        assert line.startswith(start), line
