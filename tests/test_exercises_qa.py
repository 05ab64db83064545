"""Chapter 13's coding exercise: the best valid span, checked against the course's ``decode_spans``."""

import numpy as np
from exercise_helpers import SOLUTION_TITLE, assert_hidden, code_cell, only_line, run_cell

from hft_lessons.exercises.qa import check_best_span

CHAPTER = "13_question_answering.ipynb"


def _namespace() -> dict:
    return {"np": np, "check_best_span": check_best_span}


def test_the_hidden_solution_is_right(capsys):
    cell = code_cell(CHAPTER, SOLUTION_TITLE)
    assert cell.source.startswith(SOLUTION_TITLE)
    assert_hidden(cell)
    solution = run_cell(cell, _namespace())["best_valid_span"]
    assert only_line(capsys) == "right"
    offsets = [None, (0, 3), (4, 9), None]  # [CLS], two context tokens, [SEP]; padded logits
    starts, ends = np.array([9.0, 1.0, 2.0, 9.0, 0.0]), np.array([9.0, 0.5, 1.0, 9.0, 0.0])
    assert solution(starts, ends, offsets, 30) == (2, 2)
    assert solution(starts, ends, offsets, 1) == (2, 2)


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = run_cell(code_cell(CHAPTER, 'raise NotImplementedError("your code here")'),
                        _namespace())["best_valid_span"]
    assert check_best_span(scaffold) is False
    assert only_line(capsys) == "wrong: not implemented yet"


def test_plausible_wrong_spans_get_a_useful_line(capsys):
    solution = run_cell(code_cell(CHAPTER, SOLUTION_TITLE), _namespace())["best_valid_span"]
    capsys.readouterr()
    argmax_each = lambda s, e, offsets, n: (int(np.argmax(s)), int(np.argmax(e)))  # noqa: E731
    assert check_best_span(argmax_each) is False
    assert "outside the context" in only_line(capsys)
    no_limit = lambda s, e, offsets, n: solution(s, e, offsets, 10**6)  # noqa: E731
    assert check_best_span(no_limit) is False
    assert only_line(capsys).endswith("tokens, more than max_answer_length")
    top_20 = lambda s, e, offsets, n: solution(s, e, offsets, min(n, 2))  # noqa: E731
    assert check_best_span(top_20) is False
    assert "a valid span scores" in only_line(capsys)
    assert check_best_span(lambda s, e, offsets, n: 3) is False
    assert only_line(capsys) == "wrong: returned int; return a pair (start_token, end_token)"
