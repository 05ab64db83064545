"""Chapter 3's whole-word-masking exercise: the hidden solution passes its checker; the scaffold and
wrong answers do not."""

from pathlib import Path

import nbformat
import pytest
import torch
from exercise_helpers import code_cell
from exercise_helpers import only_line as _only_line

from hft_lessons import mlm
from hft_lessons.exercises.masking import check_whole_word_mask

CHAPTER_3 = Path(__file__).resolve().parents[1] / "notebooks" / "03_pretraining.ipynb"


def _cell(marker: str) -> nbformat.NotebookNode:
    """The one code cell of chapter 3 whose source contains ``marker``."""
    return code_cell(CHAPTER_3.name, marker)


def _run(source: str) -> dict:
    """Exec a notebook cell's source with the names the chapter has defined by then."""
    namespace = {"torch": torch, "check_whole_word_mask": check_whole_word_mask}
    exec(compile(source, "chapter 3 cell", "exec"), namespace)
    return namespace


def _solution(capsys):
    cell = _cell("#@title Solution")
    solution = _run(cell.source)["whole_word_mask"]
    capsys.readouterr()
    return solution


def test_the_hidden_solution_is_right_and_hidden(capsys):
    cell = _cell("#@title Solution")
    assert cell.source.startswith("#@title Solution (run to check; double-click to show)")
    assert cell.metadata["tags"] == ["hide-input", "nbval-check-output"]
    assert cell.metadata["jupyter"] == {"source_hidden": True} and cell.metadata["cellView"] == "form"
    solution = _run(cell.source)["whole_word_mask"]  # the cell itself runs the checker
    assert _only_line(capsys) == "right"
    assert check_whole_word_mask(solution, mlm_probability=0.4) is True


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = _run(_cell('raise NotImplementedError("your code here")').source)["whole_word_mask"]
    assert check_whole_word_mask(scaffold) is False
    assert _only_line(capsys) == "wrong: not implemented yet"


def test_token_level_masking_is_wrong_and_told_why(capsys):
    def per_token(ids, continuation, mask_id, vocab, specials, p=0.15, generator=None):
        return mlm.mask_tokens(ids, mask_id, vocab, specials, p, generator)

    assert check_whole_word_mask(per_token) is False
    line = _only_line(capsys)
    assert line.startswith("wrong: ") and "partly chosen" in line and "choose whole words" in line


def test_all_mask_and_unseeded_and_in_place_answers_are_wrong(capsys):
    solution = _solution(capsys)

    def all_mask(ids, *args):
        inputs, labels = solution(ids, *args)
        return inputs.masked_fill(labels != -100, args[1]), labels

    def unseeded(ids, continuation, mask_id, vocab, specials, p=0.15, generator=None):
        return solution(ids, continuation, mask_id, vocab, specials, p, None)

    def in_place(ids, *args):
        inputs, labels = solution(ids, *args)
        ids[labels != -100] = args[1]
        return inputs, labels

    assert check_whole_word_mask(all_mask) is False
    assert "100% became [MASK]" in _only_line(capsys)
    assert check_whole_word_mask(unseeded) is False
    assert "generator" in _only_line(capsys)
    assert check_whole_word_mask(in_place) is False
    assert "in place" in _only_line(capsys)


def test_choosing_too_many_words_is_wrong_and_a_bad_rate_is_refused(capsys):
    solution = _solution(capsys)

    def too_many_words(ids, continuation, mask_id, vocab, specials, p=0.15, generator=None):
        return solution(ids, continuation, mask_id, vocab, specials, 2 * p, generator)

    assert check_whole_word_mask(too_many_words) is False
    line = _only_line(capsys)
    assert "of the words were chosen" in line and "expected about 15%" in line
    with pytest.raises(ValueError, match="mlm_probability must be between"):
        check_whole_word_mask(solution, mlm_probability=0.9)
