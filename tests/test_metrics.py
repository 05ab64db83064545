"""Entity-level NER scores (seqeval) and the official SQuAD v1.1 normalization, EM and F1."""

from __future__ import annotations

import pytest

from hft_lessons.metrics import (
    entity_scores,
    exact_match,
    f1_score,
    normalize_answer,
    squad_scores,
    tags_to_spans,
)

# --- seqeval wrapper --------------------------------------------------------------------------------


def test_entity_scores_hand_worked():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # gold entities: PER, LOC, ORG; predicted: PER, ORG (wrong, should be LOC), ORG → 2 of 3 right
    scores = entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["f1_PER"] == 1.0
    assert scores["precision_LOC"] == 0.0 and scores["recall_LOC"] == 0.0 and scores["f1_LOC"] == 0.0
    assert scores["precision_ORG"] == 0.5 and scores["recall_ORG"] == 1.0
    assert scores["f1_ORG"] == pytest.approx(2 / 3)
    assert all(isinstance(v, float) for v in scores.values())


def test_entity_scores_partial_span_is_wrong_and_conlleval_mode():
    # a span must match exactly: one word of a two-word entity earns nothing
    assert entity_scores([["B-ORG", "I-ORG", "O"]], [["B-ORG", "O", "O"]])["f1"] == 0.0
    # default (conlleval) mode: an entity that starts with I- still counts
    assert entity_scores([["B-MISC", "I-MISC"]], [["I-MISC", "I-MISC"]])["f1"] == 1.0
    # a perfect tagging scores 1 everywhere
    tags = [["B-PER", "O", "B-LOC", "I-LOC", "B-MISC"]]
    assert {v for v in entity_scores(tags, tags).values()} == {1.0}


def test_entity_scores_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="sentences"):
        entity_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])


def test_tags_to_spans():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]
    assert tags_to_spans(tags) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 5)]


# --- SQuAD v1.1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),  # case and articles
        ("an apple a day", "apple day"),
        ("theatre and Athens", "theatre and athens"),  # articles only as whole words
        ("  1889\n", "1889"),  # whitespace
        ("U.S.", "us"),  # punctuation is deleted, not replaced by a space
        ("rock-and-roll!", "rockandroll"),
        ("Paris,   France", "paris france"),
        ("the", ""),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_hand_worked():
    assert exact_match("The Eiffel Tower.", "eiffel tower")
    assert exact_match("U.S.", "US")
    assert not exact_match("Eiffel", "Eiffel Tower")


def test_f1_hand_worked():
    # "the" is removed: pred "big red barn" (3 tokens) vs gold "red barn" (2): P = 2/3, R = 1 → F1 = 0.8
    assert f1_score("the big red barn", "red barn") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert f1_score("the big red barn", "red barn") == pytest.approx(0.8)
    # pred "red barn" vs gold "big old red barn": P = 1, R = 0.5 → F1 = 2·1·0.5/1.5 = 2/3
    assert f1_score("red barn", "a big old red barn") == pytest.approx(2 * 1 * 0.5 / 1.5)
    # repeated tokens count only as often as they occur in both
    assert f1_score("new new york", "new york") == pytest.approx(0.8)
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("the", "a") == 0.0  # both normalize to nothing: no overlap, as in the official script


def test_squad_scores_best_over_golds_in_percent():
    predictions = {"q1": "the Eiffel Tower", "q2": "1889", "q3": "Paris France"}
    references = {"q1": ["Eiffel Tower"], "q2": ["in 1887", "1889"], "q3": ["Paris"]}
    scores = squad_scores(predictions, references)
    # EM: 1 + 1 + 0; F1: 1 + 1 + 2·0.5·1/1.5 ("paris france" vs "paris")
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 + 2 / 3) / 3)
    assert round(scores["f1"], 2) == 88.89


def test_squad_scores_bad_input():
    with pytest.raises(ValueError, match="no prediction"):
        squad_scores({}, {"q1": ["x"]})
    with pytest.raises(ValueError, match="non-empty list"):
        squad_scores({"q1": "x"}, {"q1": "x"})
    with pytest.raises(ValueError, match="at least one"):
        squad_scores({}, {})
