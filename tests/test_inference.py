"""Inference helpers: answers on good input, one-line errors or warnings on bad input (tiny random models)."""

from __future__ import annotations

import warnings

import pytest
import torch

from hft_lessons.backbone import load_backbone
from hft_lessons.data import NER_LABELS
from hft_lessons.inference import answer, classify, model_max_length, split_words, tag_entities
from hft_lessons.tasks import get_task


@pytest.fixture(scope="module")
def tokenizer_and_models():
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)
    torch.manual_seed(0)
    models = {name: get_task(name).build_model(backbone) for name in ("sst2", "conll2003", "squad")}
    return tokenizer, models


@pytest.fixture(scope="module")
def tokenizer(tokenizer_and_models):
    return tokenizer_and_models[0]


@pytest.fixture(scope="module")
def models(tokenizer_and_models):
    return tokenizer_and_models[1]


LONG_TEXT = "the film is long and slow . " * 120  # ≈ 840 tokens, more than the 512 positions


def test_split_words_like_conll():
    words = [w for w, _, _ in split_words("Mr. O'Neil visited New York-based U.N. offices, didn't he?")]
    assert words == ["Mr", ".", "O'Neil", "visited", "New", "York-based", "U.N", ".", "offices", ",",
                     "didn't", "he", "?"]


def test_model_max_length(models, tokenizer):
    assert model_max_length(models["sst2"], tokenizer) == 512


# --- classify -----------------------------------------------------------------------------------------


def test_classify_returns_label_and_probability(models, tokenizer):
    out = classify(models["sst2"], tokenizer, ["a gripping, funny film", "dull"])
    assert len(out) == 2
    for label, prob in out:
        assert label in ("negative", "positive") and 0.5 <= prob <= 1.0
    assert classify(models["sst2"], tokenizer, "one sentence")[0][0] in ("negative", "positive")
    assert models["sst2"].training  # the helper restores the model's mode


@pytest.mark.parametrize("bad", ["", "   \n", ["fine", ""], []])
def test_classify_empty_input(models, tokenizer, bad):
    with pytest.raises(ValueError, match="^empty input"):
        classify(models["sst2"], tokenizer, bad)


@pytest.mark.parametrize("bad", [None, 42, ["fine", 3]])
def test_classify_non_string(models, tokenizer, bad):
    with pytest.raises((TypeError, ValueError), match="string"):
        classify(models["sst2"], tokenizer, bad)


def test_classify_truncates_long_text_with_a_warning(models, tokenizer):
    with pytest.warns(UserWarning, match="truncated"):
        out = classify(models["sst2"], tokenizer, [LONG_TEXT, "short"])
    assert len(out) == 2


def test_classify_wrong_model_or_labels(models, tokenizer):
    with pytest.raises(ValueError, match="ClassificationHead"):
        classify(models["squad"], tokenizer, "text")
    with pytest.raises(ValueError, match="3 labels"):
        classify(models["sst2"], tokenizer, "text", labels=("a", "b", "c"))


# --- tag_entities --------------------------------------------------------------------------------------


def _always(model, tag: str):
    """Make a tagging model predict ``tag`` everywhere (so the output is known)."""
    head = model.head.classifier
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[NER_LABELS.index(tag)] = 10.0


def test_tag_entities_returns_text_spans_and_types(tokenizer):
    _, backbone = load_backbone("tiny-random-bert", verbose=False)
    model = get_task("conll2003").build_model(backbone)
    text = "Angela  Merkel visited Washington."
    _always(model, "I-PER")  # conlleval: a run of I-PER is one entity covering every word
    assert tag_entities(model, tokenizer, text) == [("Angela  Merkel visited Washington.", "PER")]
    _always(model, "B-LOC")  # every word is its own entity
    assert tag_entities(model, tokenizer, text) == [(w, "LOC") for w in ["Angela", "Merkel", "visited",
                                                                         "Washington", "."]]
    assert tag_entities(model, tokenizer, ["New", "York"]) == [("New", "LOC"), ("York", "LOC")]
    _always(model, "O")
    assert tag_entities(model, tokenizer, text) == []


def test_tag_entities_random_model_gives_well_formed_output(models, tokenizer):
    out = tag_entities(models["conll2003"], tokenizer, "Angela Merkel visited Washington .".split())
    assert all(isinstance(t, str) and kind in ("PER", "ORG", "LOC", "MISC") for t, kind in out)


@pytest.mark.parametrize("bad", ["", "  ", [], ["Paris", ""]])
def test_tag_entities_empty_input(models, tokenizer, bad):
    with pytest.raises(ValueError, match="^empty input"):
        tag_entities(models["conll2003"], tokenizer, bad)


@pytest.mark.parametrize("bad", [None, 3.5, ["Paris", 7]])
def test_tag_entities_non_string(models, tokenizer, bad):
    with pytest.raises(TypeError, match="string"):
        tag_entities(models["conll2003"], tokenizer, bad)


def test_tag_entities_truncates_long_sentences_with_a_warning(models, tokenizer):
    with pytest.warns(UserWarning, match="truncated"):
        out = tag_entities(models["conll2003"], tokenizer, "Paris " * 700)
    assert isinstance(out, list)


def test_tag_entities_wrong_model(models, tokenizer):
    with pytest.raises(ValueError, match="TokenClassificationHead"):
        tag_entities(models["sst2"], tokenizer, "Paris")


# --- answer ----------------------------------------------------------------------------------------------

CONTEXT = "Thornwick Bridge was completed in 1774 to a design by the engineer Margaret Ellery."


def test_answer_returns_a_span_of_the_context(models, tokenizer):
    text, score = answer(models["squad"], tokenizer, "When was the bridge completed?", CONTEXT, 64, 16)
    assert text and text in CONTEXT and 0.0 < score <= 1.0


def test_answer_reads_long_contexts_in_windows(models, tokenizer):
    long_context = " ".join([CONTEXT] * 150)  # ≈ 3,000 tokens, far beyond 512 positions
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning: every window is read
        text, score = answer(models["squad"], tokenizer, "Who designed it?", long_context, 384, 128)
    assert text in long_context and 0.0 < score <= 1.0


@pytest.mark.parametrize(
    ("question", "context", "missing"),
    [("", CONTEXT, "question"), ("  ", CONTEXT, "question"), ("Who?", "", "context"),
     ("Who?", None, "context"), (None, CONTEXT, "question")],
)
def test_answer_names_what_is_missing(models, tokenizer, question, context, missing):
    with pytest.raises(ValueError, match=missing):
        answer(models["squad"], tokenizer, question, context)


def test_answer_bad_types_and_sizes(models, tokenizer):
    with pytest.raises(TypeError, match="question must be a string"):
        answer(models["squad"], tokenizer, 12, CONTEXT)
    with pytest.raises(ValueError, match="question is too long"):
        answer(models["squad"], tokenizer, "why " * 100, CONTEXT, max_length=64, stride=16)
    with pytest.raises(ValueError, match="SpanHead"):
        answer(models["sst2"], tokenizer, "Who?", CONTEXT)
