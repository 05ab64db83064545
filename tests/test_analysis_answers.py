"""QA error analysis: per-question scores (hand-worked), worst errors, question types, predictions, the
plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from matplotlib.figure import Figure

from hft_lessons.analysis.answers import (
    QUESTION_TYPES,
    context_snippet,
    per_question_scores,
    plot_scores_by_type,
    predict_answers,
    question_type,
    scores_by_type,
    window_logits,
    worst_errors,
)
from hft_lessons.backbone import load_backbone
from hft_lessons.data import load_samples
from hft_lessons.metrics import squad_scores
from hft_lessons.tasks import get_task
from hft_lessons.tasks.question_answering import decode_spans

CONTEXT = "The Eiffel Tower was completed in 1889 by Gustave Eiffel's company in Paris, France."


def _raw(items: list[tuple[str, str, list[str]]]) -> Dataset:
    """A SQuAD-style split from (id, question, gold answers); every gold answer occurs in CONTEXT."""
    return Dataset.from_list([
        {"id": qid, "title": "t", "context": CONTEXT, "question": q,
         "answers": {"text": golds, "answer_start": [CONTEXT.index(g) for g in golds]}}
        for qid, q, golds in items])


RAW = _raw([
    ("q1", "What was completed in 1889?", ["The Eiffel Tower"]),
    ("q2", "When was it completed?", ["1889", "in 1889"]),
    ("q3", "Whose company built it?", ["Gustave Eiffel's company"]),
    ("q4", "Where is it?", ["Paris, France", "Paris"]),
    ("q5", "How many years ago?", ["1889"]),
])
PREDICTIONS = {
    "q1": "eiffel tower.",        # article and punctuation are normalized away: EM 1
    "q2": "completed in 1889",    # vs "in 1889": P 2/3, R 1 -> F1 0.8 (vs "1889": 0.5); best 0.8
    # vs "gustave eiffels company": P 1/2, R 1/3 -> F1 0.4 ("eiffel" ≠ "eiffels")
    "q3": "Gustave Eiffel",
    "q4": "Paris",                # equals the second gold answer: EM 1
    "q5": "Gustave",              # no overlap: F1 0
}


# --- per-question scores, hand-worked ------------------------------------------------------------


def test_per_question_scores_hand_worked():
    rows = {r["id"]: r for r in per_question_scores(PREDICTIONS, RAW)}
    assert [(rows[q]["em"], round(rows[q]["f1"], 6)) for q in ("q1", "q2", "q3", "q4", "q5")] == [
        (1.0, 1.0), (0.0, 0.8), (0.0, 0.4), (1.0, 1.0), (0.0, 0.0)]
    assert rows["q2"]["gold"] == ["1889", "in 1889"] and rows["q2"]["prediction"] == "completed in 1889"
    assert rows["q3"]["type"] == "who" and rows["q5"]["type"] == "how many"
    assert rows["q4"]["context"] == CONTEXT and rows["q4"]["answer_start"] == CONTEXT.index("Paris")


def test_per_question_scores_average_to_squad_scores():
    rows = per_question_scores(PREDICTIONS, RAW)
    official = squad_scores(PREDICTIONS, {ex["id"]: ex["answers"]["text"] for ex in RAW})
    assert 100 * np.mean([r["em"] for r in rows]) == pytest.approx(official["exact_match"]) == 40.0
    assert 100 * np.mean([r["f1"] for r in rows]) == pytest.approx(official["f1"]) == pytest.approx(64.0)


def test_per_question_scores_bad_input():
    with pytest.raises(ValueError, match="'q5' has no prediction"):
        per_question_scores({k: v for k, v in PREDICTIONS.items() if k != "q5"}, RAW)
    with pytest.raises(ValueError, match="empty"):
        per_question_scores(PREDICTIONS, RAW.select([]))


# --- worst errors and scores by type ---------------------------------------------------------------


def test_worst_errors_lowest_f1_first_only_wrong_answers():
    rows = per_question_scores(PREDICTIONS, RAW)
    assert [r["id"] for r in worst_errors(rows, 10)] == ["q5", "q3", "q2"]  # q1, q4 are exact matches
    assert [r["id"] for r in worst_errors(rows, 2)] == ["q5", "q3"]
    assert worst_errors(rows, 0) == []
    tied = [{"id": i, "em": 0.0, "f1": 0.0} for i in "abc"]
    assert [r["id"] for r in worst_errors(tied, 3)] == ["a", "b", "c"]  # ties keep the split's order
    with pytest.raises(ValueError, match="n must be >= 0"):
        worst_errors(rows, -1)


def test_scores_by_type_hand_worked():
    rows = per_question_scores(PREDICTIONS, RAW)
    by_type = scores_by_type(rows)
    # QUESTION_TYPES order
    assert [r["type"] for r in by_type] == ["what", "who", "when", "where", "how many"]
    got = {r["type"]: (r["n"], r["exact_match"], round(r["f1"], 6)) for r in by_type}
    assert got == {"what": (1, 100.0, 100.0), "who": (1, 0.0, 40.0), "when": (1, 0.0, 80.0),
                   "where": (1, 100.0, 100.0), "how many": (1, 0.0, 0.0)}
    two = scores_by_type([{"type": "why", "em": 1.0, "f1": 1.0}, {"type": "why", "em": 0.0, "f1": 0.5}])
    assert two == [{"type": "why", "n": 2, "exact_match": 50.0, "f1": 75.0}]
    with pytest.raises(ValueError, match="no rows"):
        scores_by_type([])


@pytest.mark.parametrize(("question", "kind"), [
    ("What is the capital of France?", "what"),
    ("In what year did the war end?", "what"),
    ("Who wrote Hamlet?", "who"),
    ("Whose idea was it?", "who"),
    ("To whom was it given?", "who"),
    ("When did it open?", "when"),
    ("Where is the tower?", "where"),
    ("How many arches does the bridge have?", "how many"),
    ("Through how many degrees can owls turn?", "how many"),
    ("How much did it cost?", "other"),
    ("How long is the river?", "other"),
    ("Which team won?", "which"),
    ("The Broncos beat which team?", "which"),
    ("Why did it fail?", "why"),
    ("Name the largest city.", "other"),
    ("Somewhat odd, nowhere near?", "other"),  # wh-words inside other words do not count
    ("WHO founded it?", "who"),
])
def test_question_type(question, kind):
    assert question_type(question) == kind
    assert kind in QUESTION_TYPES


def test_question_type_rejects_non_strings():
    with pytest.raises(TypeError, match="question must be a string, got NoneType"):
        question_type(None)


def test_context_snippet_marks_the_answer():
    start = CONTEXT.index("1889")
    assert context_snippet(CONTEXT, start, 4, width=10) == "…pleted in [[1889]] by Gustav…"
    assert context_snippet(CONTEXT, 0, 3, width=5) == "[[The]] Eiff…"
    assert context_snippet(CONTEXT, len(CONTEXT) - 7, 7, width=2) == "…, [[France.]]"
    with pytest.raises(ValueError, match="outside the context"):
        context_snippet(CONTEXT, len(CONTEXT) - 2, 5)


def test_plot_scores_by_type_one_run_and_several():
    by_type = scores_by_type(per_question_scores(PREDICTIONS, RAW))
    fig = plot_scores_by_type(by_type)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == len(by_type)
    fig = plot_scores_by_type({"full": by_type, "lora": by_type}, metric="exact_match", title="EM")
    assert len(fig.axes[0].patches) == 2 * len(by_type) and fig.axes[0].get_title() == "EM"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_scores_by_type([])
    with pytest.raises(ValueError, match="unknown metric"):
        plot_scores_by_type(by_type, metric="accuracy")


# --- predictions from a (tiny, random) model: the same answers the task's metrics score --------------


@pytest.fixture(scope="module")
def qa_setup():
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    task = get_task("squad")
    torch.manual_seed(0)
    model = task.build_model(backbone).eval()
    raw = load_samples("squad")["validation"].select(range(12))
    features = task.tokenize(raw, tokenizer, 64, 16, train=False)
    return task, model, tokenizer, raw, features


def test_predict_answers_are_what_evaluate_scores(qa_setup):
    task, model, tokenizer, raw, features = qa_setup
    preds = predict_answers(model, task, features, raw, tokenizer, batch_size=5)
    assert set(preds) == set(raw["id"])
    assert all(p in ex["context"] for ex in raw for p in [preds[ex["id"]]])
    references = {ex["id"]: ex["answers"]["text"] for ex in raw}
    assert squad_scores(preds, references) == task.evaluate(model, features, raw, tokenizer, batch_size=7)
    # batching-independent
    assert predict_answers(model, task, features, raw, tokenizer, batch_size=128) == preds


def test_window_logits_decode_to_the_predictions(qa_setup):
    task, model, tokenizer, raw, features = qa_setup
    logits = window_logits(model, task, features, tokenizer, batch_size=4)
    assert len(logits) == len(features) > len(raw)  # 64-token windows: contexts overflow
    assert all(
        len(s) == len(e) == len(ids) for (s, e), ids in zip(logits, features["input_ids"], strict=True)
    )
    preds = predict_answers(model, task, features, raw, tokenizer)
    for ex in raw:
        idx = [i for i, eid in enumerate(features["example_id"]) if eid == ex["id"]]
        spans = decode_spans(ex["context"], [logits[i][0] for i in idx], [logits[i][1] for i in idx],
                             [features[i]["offset_mapping"] for i in idx])
        assert (spans[0]["text"] if spans else "") == preds[ex["id"]]


def test_predictions_bad_input(qa_setup):
    task, model, tokenizer, raw, _ = qa_setup
    with pytest.raises(ValueError, match="task must be a QuestionAnsweringTask"):
        predict_answers(model, get_task("sst2"), None, raw, tokenizer)
    train_features = task.tokenize(raw, tokenizer, 64, 16, train=True)
    with pytest.raises(ValueError, match="tokenize the split with train=False"):
        window_logits(model, task, train_features, tokenizer)
