"""CoNLL-2003 error analysis: hand-worked per-type scores, every error kind, highlighting, predictions."""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from seqeval.metrics import classification_report, f1_score  # noqa: E402
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support  # noqa: E402

from hft_lessons.analysis.entities import (  # noqa: E402
    ENTITY_TYPES,
    ERROR_KINDS,
    EntityError,
    bracketed,
    count_entities,
    error_kinds,
    highlight,
    highlight_text,
    per_type_scores,
    plot_type_scores,
    predict_tags,
    sentence_errors,
    sentences_with_errors,
)
from hft_lessons.backbone import load_backbone  # noqa: E402
from hft_lessons.data import load_samples  # noqa: E402
from hft_lessons.metrics import entity_scores  # noqa: E402
from hft_lessons.tasks import get_task  # noqa: E402

# gold entities: PER (s0, 0-1), LOC (s0, 3), ORG (s1, 0), MISC (s1, 2)
# predicted:     PER (s0, 0-1) right, ORG (s0, 3) wrong type, ORG (s1, 0) right, MISC missed
GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]


# --- per-type scores ----------------------------------------------------------------------------------


def test_per_type_scores_by_hand():
    s = per_type_scores(GOLD, PRED, overall=True)
    assert list(s) == ["LOC", "MISC", "ORG", "PER", "overall"]
    assert s["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert s["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert s["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # missed
    assert s["ORG"]["precision"] == 0.5 and s["ORG"]["recall"] == 1.0 and s["ORG"]["support"] == 1
    assert s["ORG"]["f1"] == pytest.approx(2 / 3)
    # overall: 2 correct of 3 predicted and 4 gold
    assert s["overall"]["precision"] == pytest.approx(2 / 3) and s["overall"]["recall"] == 0.5
    assert s["overall"]["f1"] == pytest.approx(4 / 7) and s["overall"]["support"] == 4


def test_per_type_scores_fixed_types_and_no_entities():
    s = per_type_scores([["O", "O"]], [["O", "O"]], types=ENTITY_TYPES, overall=True)
    assert list(s) == [*ENTITY_TYPES, "overall"]
    assert all(v == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for v in s.values())
    assert per_type_scores([["O"]], [["O"]]) == {}


def _random_tags(g: torch.Generator, n: int) -> list[str]:
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    weights = torch.tensor([6.0, 1, 1, 1, 1, 1, 1, 1, 1])
    return [tags[i] for i in torch.multinomial(weights, n, replacement=True, generator=g)]


def test_per_type_scores_equal_seqeval_and_entity_scores():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 15, (60,), generator=g).tolist()
    gold = [_random_tags(g, n) for n in lengths]
    pred = [_random_tags(g, n) for n in lengths]
    ours = per_type_scores(gold, pred, overall=True)
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    mine = entity_scores(gold, pred)
    for kind in ENTITY_TYPES:
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert ours[kind][key] == pytest.approx(report[kind][theirs], abs=1e-12)
            assert ours[kind][key] == pytest.approx(mine[f"{key}_{kind}"], abs=1e-12)
        assert ours[kind]["support"] == report[kind]["support"]
    assert ours["overall"]["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0), abs=1e-12)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average="micro", zero_division=0)
    assert (ours["overall"]["precision"], ours["overall"]["recall"]) == pytest.approx((p, r), abs=1e-12)
    assert ours["overall"]["f1"] == pytest.approx(f, abs=1e-12)


def test_count_entities():
    assert count_entities(GOLD) == {"PER": 1, "LOC": 1, "ORG": 1, "MISC": 1}
    assert count_entities([["B-LOC", "B-LOC", "I-LOC", "O"]]) == {"LOC": 2}
    with pytest.raises(ValueError, match="single sentence"):
        count_entities(["B-LOC", "O"])


def test_plot_type_scores():
    scores = {
        "full": per_type_scores(GOLD, PRED, ENTITY_TYPES),
        "lora": per_type_scores(GOLD, GOLD, ENTITY_TYPES),
    }
    fig = plot_type_scores(scores)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert len(fig.axes[2].patches) == 2 * len(ENTITY_TYPES)  # one bar per method and type
    heights = [p.get_height() for p in fig.axes[2].patches]
    assert heights[len(ENTITY_TYPES):] == [100.0] * len(ENTITY_TYPES)  # lora: gold = prediction
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(ENTITY_TYPES)
    empty = plot_type_scores({"full": {}}, metrics=("f1",))  # no entities at all: still a figure
    assert len(empty.axes) == 1 and not empty.axes[0].patches
    with pytest.raises(ValueError, match="empty"):
        plot_type_scores({})


# --- error kinds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gold, pred, kind", [
    (["B-PER", "I-PER", "O"], ["B-ORG", "I-ORG", "O"], "wrong type"),
    (["B-ORG", "I-ORG", "I-ORG"], ["B-ORG", "I-ORG", "O"], "wrong boundary"),
    (["O", "B-LOC", "O"], ["B-LOC", "I-LOC", "O"], "wrong boundary"),
    (["B-LOC", "I-LOC"], ["O", "B-PER"], "wrong type and boundary"),
    (["B-MISC", "O"], ["O", "O"], "missed"),
    (["O", "O"], ["O", "B-LOC"], "spurious"),
])
def test_each_error_kind(gold, pred, kind):
    errors = sentence_errors(gold, pred)
    assert [e.kind for e in errors] == [kind]
    assert error_kinds([gold], [pred]) == Counter({kind: 1})
    assert set(error_kinds([gold], [pred])) == set(ERROR_KINDS)  # zeros are kept for a stable table


def test_error_details_split_merge_and_correct():
    # "wrong type" names the gold span with the same boundaries
    assert sentence_errors(["B-PER", "I-PER"], ["B-LOC", "I-LOC"]) == [
        EntityError("wrong type", (("PER", 0, 1),), ("LOC", 0, 1))]
    # one gold entity split in two predictions: two boundary errors, nothing missed
    split = sentence_errors(["B-ORG", "I-ORG", "I-ORG"], ["B-ORG", "B-ORG", "O"])
    assert [e.kind for e in split] == ["wrong boundary", "wrong boundary"]
    # two gold entities merged into one prediction: one boundary error touching both
    merged = sentence_errors(["B-PER", "B-PER"], ["B-PER", "I-PER"])
    assert merged == [EntityError("wrong boundary", (("PER", 0, 0), ("PER", 1, 1)), ("PER", 0, 1))]
    # a missed entity next to a correct one; conlleval decoding: I-PER after O starts an entity
    assert sentence_errors(["B-PER", "O", "B-LOC"], ["I-PER", "O", "O"]) == [
        EntityError("missed", (("LOC", 2, 2),), None)]
    assert sentence_errors(["O", "B-PER"], ["O", "B-PER"]) == []


def test_error_kinds_over_sentences_and_indices():
    counts = error_kinds(GOLD, PRED)
    assert counts == Counter({"wrong type": 1, "missed": 1})
    assert sum(counts.values()) == 2 and counts["spurious"] == 0
    assert sentences_with_errors(GOLD, PRED) == [0, 1]
    assert sentences_with_errors(GOLD, GOLD) == []
    assert sentences_with_errors([["B-PER"]], [["I-PER"]]) == []  # same entity once decoded


def test_errors_are_one_line_value_errors():
    with pytest.raises(ValueError, match="single sentence"):
        error_kinds(["B-PER"], ["B-PER"])
    with pytest.raises(ValueError, match="sentences"):
        error_kinds(GOLD, PRED[:1])
    with pytest.raises(ValueError, match="2 tags"):
        sentence_errors(["O", "O"], ["O"])
    with pytest.raises(ValueError, match="3 words but 2 gold"):
        highlight(["a", "b", "c"], ["O", "O"], ["O", "O", "O"])
    with pytest.raises(ValueError, match="not a string|got a string"):
        bracketed("Germany", ["B-LOC"])


# --- rendering ----------------------------------------------------------------------------------------

WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "<b>"]
W_GOLD = ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
W_PRED = ["B-LOC", "O", "B-MISC", "O", "O", "O", "O", "O", "O"]


def test_bracketed_and_text_fallback():
    assert bracketed(["Peter", "Blackburn", "in", "Germany"], ["B-PER", "I-PER", "O", "B-LOC"]) == \
        "[Peter Blackburn|PER] in [Germany|LOC]"
    text = highlight_text(WORDS, W_GOLD, W_PRED)
    assert text.splitlines() == [
        "gold: [EU|ORG] rejects [German|MISC] call to boycott [British|MISC] lamb <b>",
        "pred: [EU|LOC] rejects [German|MISC] call to boycott British lamb <b>",
    ]


def test_highlight_html_shows_entities_types_and_errors():
    out = highlight(WORDS, W_GOLD, W_PRED)
    assert out.startswith("<div") and out.endswith("</div>")
    assert ">EU<" in out and ">German<" in out and ">British<" in out
    assert ">ORG<" in out and ">LOC<" in out and ">MISC<" in out
    assert "&lt;b&gt;" in out and "<b>\n" not in out  # words are escaped
    # wrong entities (gold ORG, gold MISC "British", predicted LOC) are outlined; the correct MISC is not
    assert out.count("dashed") == 3 and out.count("solid") == 2
    assert highlight(["Paris"], ["B-LOC"], ["B-LOC"]).count("dashed") == 0


# --- predictions --------------------------------------------------------------------------------------


def test_predict_tags_agree_with_evaluate():
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    task = get_task("conll2003")
    torch.manual_seed(0)
    model = task.build_model(backbone)
    raw = load_samples("conll2003")["validation"].select(range(12))
    features = task.tokenize(raw, tokenizer, 64, train=False)
    gold, pred = predict_tags(model, task, features, raw, tokenizer, batch_size=5)
    assert len(gold) == len(pred) == len(raw)
    assert all(len(g) == len(p) for g, p in zip(gold, pred, strict=True))
    assert gold == [[task.labels[t] for t in tags] for tags in raw["ner_tags"]]  # in dataset order
    assert entity_scores(gold, pred) == task.evaluate(model, features, raw, tokenizer, 4)
    assert model.training  # left in the mode it was in
    with pytest.raises(ValueError, match="labels"):
        predict_tags(model, task, features.remove_columns("labels"), raw, tokenizer)
    with pytest.raises(ValueError, match="empty"):
        predict_tags(model, task, features.select([]), raw, tokenizer)
