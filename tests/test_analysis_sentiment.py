"""SST-2 error analysis: hand-worked confusion matrices, slices, confident mistakes, padding, predictions."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hft_lessons.analysis.sentiment import (  # noqa: E402
    accuracy,
    confident_mistakes,
    confusion_matrix,
    padding_share,
    plot_confusion_matrix,
    predict_split,
    sentence_words,
    slice_mask,
    slice_report,
)
from hft_lessons.backbone import load_backbone  # noqa: E402
from hft_lessons.tasks import get_task  # noqa: E402
from hft_lessons.training import LengthGroupedBatchSampler  # noqa: E402

GOLD = [0, 0, 1, 1, 1, 0]
PRED = [0, 1, 1, 0, 1, 1]


# --- confusion matrix ---------------------------------------------------------------------------------


def test_confusion_matrix_by_hand():
    # gold 0: predicted 0 once (#0), 1 twice (#1, #5); gold 1: predicted 0 once (#3), 1 twice (#2, #4)
    m = confusion_matrix(GOLD, PRED, 2)
    assert m.tolist() == [[1, 2], [1, 2]]
    assert m.sum().item() == len(GOLD) and m.trace().item() == 3


def test_confusion_matrix_three_classes_and_tensors():
    m = confusion_matrix(torch.tensor([0, 1, 2, 2]), torch.tensor([2, 1, 2, 0]), 3)
    assert m.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 1]]


@pytest.mark.parametrize(
    ("gold", "pred", "n", "message"),
    [([0, 1], [0], 2, "lengths differ: gold has 2, pred has 1"),
     ([0, 2], [0, 1], 2, "gold has labels outside 0..1: [2]"),
     ([0, 1], [0, 1], 0, "num_labels must be >= 1"),
     ([0.0, 1.0], [0, 1], 2, "gold must be integer class ids")],
)
def test_confusion_matrix_bad_arguments(gold, pred, n, message):
    with pytest.raises(ValueError, match=r"^" + message.replace("[", r"\[").replace("]", r"\]")) as err:
        confusion_matrix(gold, pred, n)
    assert "\n" not in str(err.value)


def test_plot_confusion_matrix_shows_the_counts():
    m = confusion_matrix(GOLD, PRED, 2)
    fig = plot_confusion_matrix(m, ["negative", "positive"], title="toy")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    counts = [int(t.get_text().split("\n")[0]) for t in ax.texts]
    assert counts == [1, 2, 1, 2]
    assert ax.texts[1].get_text() == "2\n(67%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "positive"]
    assert ax.get_title() == "toy" and ax.get_ylabel() == "gold"


def test_plot_confusion_matrix_label_mismatch_is_one_line():
    with pytest.raises(ValueError, match="2 classes but 3 labels") as err:
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"])
    assert "\n" not in str(err.value)


# --- slices -------------------------------------------------------------------------------------------


def test_sentence_words_keeps_contractions():
    assert sentence_words("It does n't work , But I’m fine.") == [
        "it",
        "does",
        "n't",
        "work",
        "but",
        "i'm",
        "fine",
    ]


def test_slice_mask_negation_including_nt():
    sentences = [
        "the film does n't work",  # SST-2 splits contractions
        "it doesn't work",  # a reader's sentence joins them
        "I can’t say",  # typographic apostrophe
        "not a bad movie",
        "a nothing of a film",
        "notable performances",  # "not" inside a word: no
        "i know it is good",  # "no" inside a word: no
        "never again",
    ]
    mask = slice_mask(sentences, ["not", "n't", "no", "never", "nothing"])
    assert mask.dtype == torch.bool
    assert mask.tolist() == [True, True, True, True, True, False, False, True]


def test_slice_mask_contrast_and_case():
    sentences = ["Good, BUT long", "though it tries", "butter and yet more", "butterfly effect", "however"]
    assert slice_mask(sentences, ["but", "though", "yet", "however"]).tolist() == [
        True,
        True,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(("words", "message"), [("not", "not one string"), ([], "words is empty")])
def test_slice_mask_bad_words(words, message):
    with pytest.raises(ValueError, match=message) as err:
        slice_mask(["a sentence"], words)
    assert "\n" not in str(err.value)


def test_accuracy_and_slice_report():
    sentences = ["not good", "great", "not bad but long", "fine", "never dull", "ok"]
    assert accuracy(GOLD, PRED) == pytest.approx(0.5)
    # negation: #0 (right), #2 (right), #4 (right) -> 1.0; contrast: #2 only -> 1.0
    assert accuracy(GOLD, PRED, torch.tensor([True, False, True, False, True, False])) == 1.0
    assert math.isnan(accuracy(GOLD, PRED, torch.zeros(6, dtype=torch.bool)))
    rows = {r["slice"]: r for r in slice_report(sentences, GOLD, PRED)}
    assert list(rows) == ["all", "negation", "contrast"]
    assert rows["all"] == {"slice": "all", "sentences": 6, "share_pct": 100.0, "accuracy": 0.5, "errors": 3}
    assert rows["negation"]["sentences"] == 3 and rows["negation"]["errors"] == 0
    assert rows["contrast"]["sentences"] == 1 and rows["contrast"]["share_pct"] == pytest.approx(16.7)


def test_slice_report_length_mismatch_is_one_line():
    with pytest.raises(ValueError, match="lengths differ: sentences has 2, gold has 6, pred has 6"):
        slice_report(["a", "b"], GOLD, PRED)


# --- confident mistakes -------------------------------------------------------------------------------


def test_confident_mistakes_sorted_by_confidence():
    sentences = [f"s{i}" for i in range(6)]
    # wrong: #1 (pred 1 @ 0.6), #3 (pred 0 @ 0.95), #5 (pred 1 @ 0.8); #2 is right with 0.99
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.01, 0.99], [0.95, 0.05], [0.3, 0.7], [0.2, 0.8]])
    out = confident_mistakes(sentences, GOLD, PRED, probs, k=2)
    assert [r["sentence"] for r in out] == ["s3", "s5"]
    assert out[0] == {"sentence": "s3", "gold": "positive", "pred": "negative", "probability": 0.95}
    assert [r["sentence"] for r in confident_mistakes(sentences, GOLD, PRED, probs, k=10)] == [
        "s3",
        "s5",
        "s1",
    ]
    assert confident_mistakes(sentences, GOLD, GOLD, probs) == []


@pytest.mark.parametrize(
    ("probs", "k", "message"),
    [
        (torch.full((6, 3), 1 / 3), 5, r"probs must be \[N, 2\]"),
        (torch.full((6, 2), 0.5), -1, "k must be >= 0"),
        (torch.full((5, 2), 0.5), 5, "lengths differ"),
    ],
)
def test_confident_mistakes_bad_arguments(probs, k, message):
    with pytest.raises(ValueError, match=message) as err:
        confident_mistakes([f"s{i}" for i in range(6)], GOLD, PRED, probs, k=k)
    assert "\n" not in str(err.value)


# --- padding ------------------------------------------------------------------------------------------


def test_padding_share_by_hand_and_grouping_saves():
    assert padding_share([2, 4, 4, 4], [[0, 1], [2, 3]]) == pytest.approx(2 / 16)  # 14 real of 16 positions
    lengths = [5 + (i * 37) % 60 for i in range(256)]
    random = LengthGroupedBatchSampler(lengths, 16, seed=0, group=False).batches()
    grouped = LengthGroupedBatchSampler(lengths, 16, seed=0, group=True).batches()
    assert padding_share(lengths, grouped) < padding_share(lengths, random)
    with pytest.raises(ValueError, match="batches is empty"):
        padding_share(lengths, [])


# --- predictions on a tiny model ----------------------------------------------------------------------


def test_predict_split_agrees_with_evaluate():
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    task = get_task("sst2")
    torch.manual_seed(0)
    model = task.build_model(backbone)
    raw = Dataset.from_dict({"sentence": ["a fine film", "dull , dull , dull and far too long", "not bad",
                                          "it is n't good", "wonderful"], "label": [1, 0, 1, 0, 1]})
    features = task.tokenize(raw, tokenizer, 32, train=False)
    pred, gold, probs = predict_split(model, task, features, tokenizer, batch_size=2)
    assert gold.tolist() == [1, 0, 1, 0, 1]  # the split's order, although batches are sorted by length
    assert probs.shape == (5, 2) and torch.allclose(probs.sum(1), torch.ones(5))
    assert torch.equal(pred, probs.argmax(1))
    assert accuracy(gold, pred) == pytest.approx(task.evaluate(model, features, raw, tokenizer)["accuracy"])
    assert model.training  # evaluate restores the model's mode
    with pytest.raises(ValueError, match="features need a 'labels' column"):
        predict_split(model, task, features.remove_columns("labels"), tokenizer)
