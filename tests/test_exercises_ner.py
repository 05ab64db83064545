"""Chapter 12's exercises: the BIO-decoding checker and the executed seqeval strict-mode answer."""

from exercise_helpers import SOLUTION_TITLE, assert_hidden, code_cell, only_line, run_cell

from hft_lessons.exercises.ner import check_bio_entities

CHAPTER = "12_named_entity_recognition.ipynb"


def test_the_hidden_solution_is_right(capsys):
    cell = code_cell(CHAPTER, SOLUTION_TITLE)
    assert cell.source.startswith(SOLUTION_TITLE)
    assert_hidden(cell)
    # the cell runs the checker itself
    solution = run_cell(cell, {"check_bio_entities": check_bio_entities})["bio_entities"]
    assert only_line(capsys) == "right"
    assert solution(["O", "I-PER", "B-PER", "I-LOC"]) == [("PER", 1, 1), ("PER", 2, 2), ("LOC", 3, 3)]


def test_the_scaffold_is_wrong_without_raising(capsys):
    scaffold = run_cell(code_cell(CHAPTER, 'raise NotImplementedError("your code here")'), {})["bio_entities"]
    assert check_bio_entities(scaffold) is False
    assert only_line(capsys) == "wrong: not implemented yet"


def _strict(tags):
    """Drops entities that start with I-: right on well-formed tags, wrong where conlleval repairs."""
    found, open_entity = [], None
    for k, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and open_entity and open_entity[0] == kind:
            open_entity[2] = k
            continue
        if open_entity:
            found.append(tuple(open_entity))
        open_entity = [kind, k, k] if prefix == "B" else None
    return found + [tuple(open_entity)] if open_entity else found


def _no_flush(tags):
    """Forgets the entity still open after the last tag."""
    return [e for e in _strict(tags) if e[2] != len(tags) - 1]


def test_plausible_wrong_decoders_get_a_useful_line(capsys):
    assert check_bio_entities(_strict) is False
    line = only_line(capsys)
    assert line.startswith("wrong: on an I- tag right after O (conlleval starts an entity there)"), line
    assert "seqeval finds 1" in line
    assert check_bio_entities(_no_flush) is False
    assert only_line(capsys).startswith("wrong: on an entity that ends the sentence")
    assert check_bio_entities(lambda tags: None) is False
    assert only_line(capsys).startswith("wrong: returned None")
    assert check_bio_entities(lambda tags: [("PER", 0)]) is False
    assert "(type, first_word, last_word) triple" in only_line(capsys)


def test_exercise_2_strict_mode_moves_f1_both_ways(capsys):
    cell = code_cell(CHAPTER, "#@title Exercise 2, executed")
    assert_hidden(cell)
    run_cell(cell, {})
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "gold ['B-LOC', 'O', 'O'] | predicted ['B-LOC', 'O', 'I-PER']: F1 0.667 by default, 1.000 strict",
        "gold ['B-PER', 'I-PER', 'O'] | predicted ['I-PER', 'I-PER', 'O']: F1 1.000 by default, 0.000 strict",
    ]
