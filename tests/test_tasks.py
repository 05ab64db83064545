"""CoNLL-2003 and SQuAD tasks: label alignment, windows, heads, losses, decoding and metrics."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

from hft_lessons.backbone import load_backbone
from hft_lessons.data import NER_LABELS, load_samples, load_task, subset
from hft_lessons.metrics import normalize_answer
from hft_lessons.tasks import get_task
from hft_lessons.tasks.question_answering import QuestionAnsweringTask, SpanHead, decode_spans
from hft_lessons.tasks.token_classification import IGNORE_INDEX, TokenClassificationTask, align_labels

REAL = Path(os.environ.get("HFT_DATA_DIR", "../shared/datasets"))
needs_real = pytest.mark.skipif(not (REAL / "squad").exists(), reason="real datasets not available")


@pytest.fixture(scope="module")
def tiny():
    """The tokenizer (the real all-MiniLM-L6-v2 WordPiece vocabulary) and a tiny random BERT."""
    return load_backbone("tiny-random-bert", verbose=False)


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[0]


def test_get_task_builds_both_tasks():
    assert isinstance(get_task("conll2003"), TokenClassificationTask)
    assert isinstance(get_task("squad"), QuestionAnsweringTask)
    assert get_task("conll2003").metric == get_task("squad").metric == "f1"


# --- Token classification ---------------------------------------------------------------------------


def test_align_labels_on_a_real_sentence(tokenizer):
    words = ["Angela", "Merkel", "visited", "Washington", "."]
    tags = [NER_LABELS.index(t) for t in ["B-PER", "I-PER", "O", "B-LOC", "O"]]
    enc = tokenizer(words, is_split_into_words=True)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert pieces == ["[CLS]", "angela", "mer", "##kel", "visited", "washington", ".", "[SEP]"]
    labels = align_labels(enc.word_ids(), tags)
    assert labels == [IGNORE_INDEX, 1, 2, IGNORE_INDEX, 0, 5, 0, IGNORE_INDEX]


def test_ner_tokenize_keeps_one_label_per_word(tokenizer):
    raw = load_samples("conll2003")["validation"]
    feats = TokenClassificationTask().tokenize(raw, tokenizer, max_length=512)
    assert set(feats.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    for row, feat in zip(raw, feats, strict=True):
        kept = [x for x in feat["labels"] if x != IGNORE_INDEX]
        assert kept == row["ner_tags"]  # nothing truncated at 512: every word labelled once, in order
    short = TokenClassificationTask().tokenize(raw, tokenizer, max_length=8)
    assert max(len(ids) for ids in short["input_ids"]) <= 8


def test_ner_collator_pads_labels_with_ignore_index(tokenizer):
    task = TokenClassificationTask()
    feats = task.tokenize(load_samples("conll2003")["train"].select(range(4)), tokenizer, 64)
    batch = task.collator(tokenizer)(list(feats))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["labels"][pad] == IGNORE_INDEX).all()


def test_ner_predict_and_metrics_with_perfect_logits(tokenizer):
    task = TokenClassificationTask()
    raw = load_samples("conll2003")["validation"]
    feats = task.tokenize(raw, tokenizer, 64)
    collate, predictions = task.collator(tokenizer), []
    for lo in range(0, len(feats), 8):
        batch = collate(list(feats.select(range(lo, min(lo + 8, len(feats))))))
        logits = torch.nn.functional.one_hot(batch["labels"].clamp(min=0), len(NER_LABELS)).float()
        predictions.append(task.predict(logits, batch))
    scores = task.compute_metrics(predictions, feats, raw)
    assert scores["f1"] == scores["precision"] == scores["recall"] == 1.0
    for kind in ("PER", "ORG", "LOC", "MISC"):
        assert scores[f"f1_{kind}"] == 1.0


def test_ner_head_and_loss_ignore_masked_positions(tiny):
    tokenizer, backbone = tiny
    task = TokenClassificationTask()
    model = task.build_model(backbone)
    batch = task.collator(tokenizer)(list(task.tokenize(load_samples("conll2003")["train"].select(range(3)),
                                                        tokenizer, 32)))
    logits = model(**batch)
    assert logits.shape == (*batch["input_ids"].shape, len(NER_LABELS))
    changed = logits.detach().clone()
    changed[batch["labels"] == IGNORE_INDEX] = 1e3  # scores at ignored positions must not matter
    assert task.loss(changed, batch).item() == pytest.approx(task.loss(logits, batch).item(), rel=1e-6)


# --- Question answering ------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Compare like an uncased WordPiece decode: lower-case, no accents, no spaces, SQuAD-normalized."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    return normalize_answer(text).replace(" ", "")


def _check_train_windows(raw, tokenizer, max_length, stride):
    task = QuestionAnsweringTask()
    feats = task.tokenize(raw, tokenizer, max_length, stride, train=True)
    assert "offset_mapping" not in feats.column_names and "example_id" not in feats.column_names
    inside = 0
    for feat in feats:
        s, e = feat["start_positions"], feat["end_positions"]
        assert len(feat["input_ids"]) <= max_length
        if s == 0:
            assert e == 0
            continue
        inside += 1
        assert s <= e and feat["token_type_ids"][s] == 1  # a span inside the context
    return feats, inside


def _window_examples(raw, tokenizer, max_length, stride):
    task = QuestionAnsweringTask()
    train = task.tokenize(raw, tokenizer, max_length, stride, train=True)
    evals = task.tokenize(raw, tokenizer, max_length, stride, train=False)
    assert len(train) == len(evals)
    return train, evals


@pytest.mark.parametrize(("max_length", "stride"), [(384, 128), (64, 16), (48, 0)])
def test_qa_train_windows_decode_to_the_answer(tokenizer, max_length, stride):
    raw = load_samples("squad")["train"]
    feats, inside = _check_train_windows(raw, tokenizer, max_length, stride)
    _, evals = _window_examples(raw, tokenizer, max_length, stride)
    answers = {ex["id"]: ex["answers"]["text"][0] for ex in raw}
    covered = set()
    for feat, example_id in zip(feats, evals["example_id"], strict=True):
        s, e = feat["start_positions"], feat["end_positions"]
        if s == 0:
            continue
        covered.add(example_id)
        decoded = tokenizer.decode(feat["input_ids"][s : e + 1])
        assert _plain(decoded) == _plain(answers[example_id]), (decoded, answers[example_id])
    assert inside > 0 and len(covered) >= 0.9 * len(raw)  # nearly every answer fits some window
    if max_length <= 64:
        assert inside < len(feats)  # short windows: some hold no answer and point at [CLS]


def test_qa_eval_features_keep_ids_and_context_offsets(tokenizer):
    task = QuestionAnsweringTask()
    raw = load_samples("squad")["validation"]
    feats = task.tokenize(raw, tokenizer, 64, 16, train=False)
    assert {"example_id", "offset_mapping"} <= set(feats.column_names)
    assert len(feats) > len(raw)  # long contexts overflow into several windows
    assert set(feats["example_id"]) == set(raw["id"])
    for feat in feats.select(range(10)):
        types, offsets = feat["token_type_ids"][:-1], feat["offset_mapping"][:-1]
        for type_id, offset in zip(types, offsets, strict=True):
            assert (offset is None) == (type_id == 0)  # [CLS], the question and its [SEP]: no offsets
        assert feat["offset_mapping"][-1] is None  # nor the final [SEP] (token type 1)
    batch = task.collator(tokenizer)(list(feats.select(range(4))))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}


def test_qa_stride_defaults_to_a_quarter_window(tokenizer):
    task = QuestionAnsweringTask()
    raw = load_samples("squad")["validation"].select(range(3))
    default = task.tokenize(raw, tokenizer, 64, 0, train=False)
    quarter = task.tokenize(raw, tokenizer, 64, 16, train=False)
    assert default["input_ids"] == quarter["input_ids"]


def test_span_head_masks_padding_and_loss_ignores_out_of_range():
    head = SpanHead(8)
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    start, end = head(hidden, mask)
    assert start.shape == end.shape == (2, 5)
    assert (start[1, 3:] < -1e30).all() and (end[1, 3:] < -1e30).all()
    task = QuestionAnsweringTask()
    batch = {"start_positions": torch.tensor([1, 99]), "end_positions": torch.tensor([2, 99])}
    loss = task.loss((start, end), batch)
    only_first = task.loss((start[:1], end[:1]), {k: v[:1] for k, v in batch.items()})
    assert torch.isfinite(loss) and loss.item() == pytest.approx(only_first.item(), rel=1e-6)


def test_decode_spans_rules_and_n_best():
    context = "Ada Lovelace wrote the first program"
    # window: [CLS] q [SEP] ada lovelace wrote the first program [SEP]
    offsets = [None, None, None, (0, 3), (4, 12), (13, 18), (19, 22), (23, 28), (29, 36), None]
    start = np.full(12, -5.0)  # wider than the window: batch padding is trimmed
    end = np.full(12, -5.0)
    start[[0, 1, 3, 5]] = [9, 9, 4, 2]  # [CLS] and the question score highest but are not context
    end[[0, 1, 4, 3]] = [9, 9, 3, 1]
    spans = decode_spans(context, [start], [end], [offsets], n_best=20, max_answer_length=30)
    assert [s["text"] for s in spans[:2]] == ["Ada Lovelace", "Ada"]
    assert spans[0]["score"] == 7.0 and spans[1]["score"] == 5.0
    assert all(s["text"] and s["text"] in context for s in spans)  # never [CLS] or the question
    assert sum(s["probability"] for s in spans) == pytest.approx(1.0)
    assert all(s["score"] >= t["score"] for s, t in zip(spans, spans[1:], strict=False))
    # candidates come from the n best starts × n best ends: with 3, only (Ada, Lovelace) is valid
    assert [s["text"] for s in decode_spans(context, [start], [end], [offsets], n_best=3)] == ["Ada Lovelace"]
    # spans longer than max_answer_length tokens are dropped
    short = decode_spans(context, [start], [end], [offsets], n_best=20, max_answer_length=1)
    assert short[0]["text"] == "Ada" and all(" " not in s["text"] for s in short)
    # the same span seen from two windows is listed once, with its best score
    twice = decode_spans(context, [start, start - 1], [end, end], [offsets, offsets], n_best=20)
    assert len({(s["char_start"], s["char_end"]) for s in twice}) == len(twice)
    assert twice[0]["score"] == 7.0
    assert decode_spans(context, [], [], []) == []


def _oracle_predictions(train_feats, batch_size=7):
    """High logits at the gold positions, in order, each batch padded to its own width."""
    predictions = []
    for lo in range(0, len(train_feats), batch_size):
        rows = train_feats[lo : lo + batch_size]
        width = max(len(ids) for ids in rows["input_ids"])
        start = np.full((len(rows["input_ids"]), width), -10.0, dtype=np.float32)
        end = start.copy()
        for j, (s, e) in enumerate(zip(rows["start_positions"], rows["end_positions"], strict=True)):
            if s > 0:  # windows without the answer: no confident span at all
                start[j, s], end[j, e] = 10.0, 10.0
        predictions.append((start, end))
    return predictions


def _oracle_scores(raw, tokenizer, max_length=128, stride=32):
    task = QuestionAnsweringTask()
    train, evals = _window_examples(raw, tokenizer, max_length, stride)
    return task.compute_metrics(_oracle_predictions(train), evals, raw)


def test_qa_oracle_logits_give_exact_match_100_on_samples(tokenizer):
    scores = _oracle_scores(load_samples("squad")["validation"], tokenizer)
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_qa_compute_metrics_checks_the_prediction_count(tokenizer):
    task = QuestionAnsweringTask()
    raw = load_samples("squad")["validation"].select(range(4))
    train, evals = _window_examples(raw, tokenizer, 128, 32)
    with pytest.raises(ValueError, match="predictions for"):
        task.compute_metrics(_oracle_predictions(train)[:-1] if len(train) > 7 else [], evals, raw)


def _on_word_boundaries(example) -> bool:
    """The first gold answer starts and ends at word boundaries (a few SQuAD answers cut words)."""
    context, start = example["context"], example["answers"]["answer_start"][0]
    end = start + len(example["answers"]["text"][0])
    return (start == 0 or not context[start - 1].isalnum()) and (
        end == len(context) or not context[end].isalnum()
    )


@needs_real
@pytest.mark.real_data
def test_qa_real_data_windows_and_oracle(tokenizer):
    raw = subset(load_task("squad", data_dir=REAL, verbose=False)["validation"], 300, seed=0)
    raw = raw.filter(_on_word_boundaries)
    assert len(raw) > 250
    scores = _oracle_scores(raw, tokenizer, 128, 32)
    assert scores["exact_match"] == 100.0 and scores["f1"] == 100.0
    _check_train_windows(raw, tokenizer, 128, 32)


@needs_real
@pytest.mark.real_data
def test_ner_real_data_alignment(tokenizer):
    raw = subset(load_task("conll2003", data_dir=REAL, verbose=False)["validation"], 300, seed=0)
    feats = TokenClassificationTask().tokenize(raw, tokenizer, max_length=512)
    for row, feat in zip(raw, feats, strict=True):
        assert [x for x in feat["labels"] if x != IGNORE_INDEX] == row["ner_tags"]


# --- Every task learns: the loss falls when overfitting a handful of examples ------------------------


@pytest.mark.parametrize("name", ["sst2", "conll2003", "squad"])
def test_loss_decreases_when_overfitting_a_few_examples(name):
    tokenizer, backbone = load_backbone("tiny-random-bert", verbose=False)  # a fresh copy per task
    task = get_task(name)
    raw = load_samples(name)["train"].select(range(8))
    feats = task.tokenize(raw, tokenizer, 64, 16, train=True)
    batch = task.collator(tokenizer)(list(feats.select(range(min(8, len(feats))))))
    torch.manual_seed(0)
    model = task.build_model(backbone, dropout=0.0)
    model.train()
    model.backbone.embeddings.word_embeddings.requires_grad_(False)  # 2M of 2.1M weights: skip for speed
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(20):
        loss = task.loss(model(**batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
