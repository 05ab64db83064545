"""Friendly inference with a trained TaskModel: classify sentences, tag entities, answer questions."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .data import NER_LABELS, SST2_LABELS
from .metrics import tags_to_spans
from .tasks.base import TaskModel
from .tasks.question_answering import QuestionAnsweringTask, SpanHead, decode_spans, window_stride
from .tasks.sequence_classification import ClassificationHead
from .tasks.token_classification import TokenClassificationHead, align_labels

__all__ = ["classify", "tag_entities", "answer", "split_words", "model_max_length"]

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")  # words (with inner - ' .) or single punctuation marks


def model_max_length(model: TaskModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input the model accepts: the tokenizer's limit capped by the position embeddings."""
    config = getattr(model.backbone, "config", None)
    positions = getattr(config, "max_position_embeddings", None) or 512
    limit = tokenizer.model_max_length or positions
    return int(min(limit, positions))


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split text into CoNLL-style words and punctuation, as ``(word, char_start, char_end)``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"empty input: {what} is empty or only whitespace")
    return value


def _check_model(model: TaskModel, head: type[nn.Module], helper: str) -> None:
    if not isinstance(model, TaskModel):
        raise TypeError(f"model must be a hft_lessons TaskModel, got {type(model).__name__}")
    if not isinstance(model.head, head):
        raise ValueError(f"{helper}() needs a model with a {head.__name__}; this one has a "
                         f"{type(model.head).__name__} (task {model.task_name or 'unknown'!r})")


def _device(model: TaskModel) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _run(model: TaskModel, batch: dict[str, torch.Tensor]):
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        return model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        model.train(was_training)


def classify(model: TaskModel, tokenizer: PreTrainedTokenizerBase, texts: str | Sequence[str],
             labels: Sequence[str] = SST2_LABELS) -> list[tuple[str, float]]:
    """Predict ``(label, probability)`` for each text (one string or a list); long texts are truncated."""
    _check_model(model, ClassificationHead, "classify")
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, Sequence):
        raise TypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    if not items:
        raise ValueError("empty input: the list of texts is empty")
    items = [_check_text(t, f"text #{i}") for i, t in enumerate(items)]
    limit = model_max_length(model, tokenizer)
    enc = tokenizer(items, truncation=True, max_length=limit, padding=True, return_tensors="pt")
    lengths = [len(ids) for ids in tokenizer(items, verbose=False)["input_ids"]]
    if max(lengths) > limit:
        warnings.warn(f"{sum(n > limit for n in lengths)} text(s) longer than {limit} tokens were truncated",
                      stacklevel=2)
    logits = _run(model, dict(enc))
    if logits.shape[-1] != len(labels):
        raise ValueError(f"the model predicts {logits.shape[-1]} classes but {len(labels)} labels were given")
    probs = logits.float().softmax(-1)
    best = probs.argmax(-1)
    return [(labels[int(k)], float(p[k])) for k, p in zip(best, probs, strict=True)]


def tag_entities(model: TaskModel, tokenizer: PreTrainedTokenizerBase, text_or_tokens: str | Sequence[str],
                 labels: Sequence[str] = tuple(NER_LABELS)) -> list[tuple[str, str]]:
    """Named entities as ``(entity_text, type)`` in a sentence (a string or a list of words)."""
    _check_model(model, TokenClassificationHead, "tag_entities")
    if isinstance(text_or_tokens, str):
        text = _check_text(text_or_tokens, "text")
        spans = split_words(text)
        words = [w for w, _, _ in spans]
    elif isinstance(text_or_tokens, Sequence):
        if not text_or_tokens:
            raise ValueError("empty input: the list of words is empty")
        words = [_check_text(w, f"word #{i}") for i, w in enumerate(text_or_tokens)]
        text, spans = None, None
    else:
        raise TypeError("text_or_tokens must be a string or a list of words, "
                        f"got {type(text_or_tokens).__name__}")
    limit = model_max_length(model, tokenizer)
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=limit, return_tensors="pt")
    word_ids = enc.word_ids(0)
    first = align_labels(word_ids, range(len(words)))  # the word index at each word's first sub-token
    # words such as emoji may have no sub-token at all; only a cut at the limit is a truncation
    n_tokens = len(tokenizer(words, is_split_into_words=True, verbose=False)["input_ids"])
    if n_tokens > limit:
        last = max((w for w in first if w >= 0), default=-1)
        warnings.warn(f"the sentence is longer than {limit} tokens: {len(words) - 1 - last} trailing "
                      "word(s) were truncated and tagged O", stacklevel=2)
    logits = _run(model, dict(enc))[0]
    if logits.shape[-1] != len(labels):
        raise ValueError(f"the model predicts {logits.shape[-1]} tags but {len(labels)} labels were given")
    pred = logits.argmax(-1).tolist()
    tags = ["O"] * len(words)
    for pos, w in enumerate(first):
        if w >= 0:
            tags[w] = labels[pred[pos]]
    entities = []
    for kind, a, b in tags_to_spans(tags):
        entity = text[spans[a][1]:spans[b][2]] if spans is not None else " ".join(words[a:b + 1])
        entities.append((entity, kind))
    return entities


def answer(model: TaskModel, tokenizer: PreTrainedTokenizerBase, question: str, context: str,
           max_length: int = 384, stride: int = 128, n_best: int = 20, max_answer_length: int = 30
           ) -> tuple[str, float]:
    """The best answer span in ``context`` and its probability; long contexts are read in sliding windows."""
    _check_model(model, SpanHead, "answer")
    if question is None or context is None:
        raise ValueError(f"missing input: {'question' if question is None else 'context'} is None")
    question = _check_text(question, "question")
    context = _check_text(context, "context")
    for name, value, low in (("max_length", max_length, 8), ("stride", stride, 0), ("n_best", n_best, 1),
                             ("max_answer_length", max_answer_length, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    max_length = min(max_length, model_max_length(model, tokenizer))
    room = max_length - len(tokenizer(question.lstrip(), add_special_tokens=False)["input_ids"]) - 3
    stride = window_stride(max_length, stride)
    if room <= stride:
        raise ValueError(f"the question is too long: it leaves {max(room, 0)} context tokens per "
                         f"{max_length}-token window, which must exceed the stride ({stride})")
    task = QuestionAnsweringTask()
    enc = task.encode_windows({"id": ["0"], "question": [question], "context": [context]}, tokenizer,
                              max_length, stride, train=False)
    rows = [{k: enc[k][i] for k in enc} for i in range(len(enc["input_ids"]))]
    batch = task.collator(tokenizer)(rows)
    start, end = task.predict(_run(model, batch), batch)
    spans = decode_spans(context, start, end, enc["offset_mapping"], n_best, max_answer_length)
    if not spans:
        return "", 0.0
    return spans[0]["text"], spans[0]["probability"]
