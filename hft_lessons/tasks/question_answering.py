"""Extractive question answering (SQuAD v1.1): sliding windows, a span head and n-best decoding."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..metrics import squad_scores
from .base import Task

__all__ = ["QuestionAnsweringTask", "SpanHead", "decode_spans", "window_stride"]

Offsets = Sequence[tuple[int, int] | list[int] | None]


def window_stride(max_length: int, stride: int = 0) -> int:
    """The overlap between consecutive windows: ``stride``, or ``max_length // 4`` when it is 0."""
    return stride if stride > 0 else max_length // 4


class SpanHead(nn.Module):
    """One linear layer to two scores per token: (start_logits, end_logits), each [batch, seq]."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits; padding positions get a large negative score."""
        start, end = self.qa_outputs(hidden).unbind(-1)
        if attention_mask is not None:
            pad = attention_mask == 0
            low = torch.finfo(start.dtype).min
            start, end = start.masked_fill(pad, low), end.masked_fill(pad, low)
        return start, end


def decode_spans(context: str, start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray],
                 offset_mappings: Sequence[Offsets], n_best: int = 20, max_answer_length: int = 30
                 ) -> list[dict[str, Any]]:
    """The n best answer spans over all windows of one example, best first (score = start + end logit).

    Each window contributes its ``n_best`` top starts × top ends with start ≤ end, both inside the
    context (offset not None) and at most ``max_answer_length`` tokens. A span found in two windows is
    kept once, with its best score. Each candidate is a dict with ``text``, ``score``, ``probability``
    (softmax over the returned scores), ``char_start`` and ``char_end``.
    """
    best: dict[tuple[int, int], float] = {}
    for starts, ends, offsets in zip(start_logits, end_logits, offset_mappings, strict=True):
        starts, ends = np.asarray(starts)[: len(offsets)], np.asarray(ends)[: len(offsets)]
        for s in np.argsort(starts)[::-1][:n_best]:
            for e in np.argsort(ends)[::-1][:n_best]:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                span = (int(offsets[s][0]), int(offsets[e][1]))
                score = float(starts[s] + ends[e])
                if score > best.get(span, -np.inf):
                    best[span] = score
    ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:n_best]
    if not ranked:
        return []
    scores = np.array([score for _, score in ranked])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return [{"text": context[a:b], "score": score, "probability": float(p), "char_start": a, "char_end": b}
            for ((a, b), score), p in zip(ranked, probs, strict=True)]


class QuestionAnsweringTask(Task):
    """Extractive QA such as SQuAD v1.1: predict the answer's start and end token in the context."""

    batch_keys = ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions")

    def __init__(self, name: str = "squad", n_best: int = 20, max_answer_length: int = 30) -> None:
        self.name, self.metric, self.metric_scale = name, "f1", 100.0
        self.n_best, self.max_answer_length = n_best, max_answer_length

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int = 0,
                 train: bool = True) -> Dataset:
        """Question + context pairs cut into overlapping windows; train: answer token positions per window.

        Evaluation features keep ``example_id`` and an ``offset_mapping`` with None outside the context.
        """
        return split.map(self.encode_windows, batched=True, remove_columns=split.column_names,
                         fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "stride": stride,
                                    "train": train})

    def encode_windows(
        self,
        batch: dict[str, list],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        stride: int = 0,
        train: bool = True,
    ) -> dict[str, list]:
        """``tokenize`` for one batch of raw columns (a dict of lists): the windows and their extras."""
        questions = [q.lstrip() for q in batch["question"]]  # leading spaces waste window room
        enc = tokenizer(questions, batch["context"], truncation="only_second", max_length=max_length,
                        stride=window_stride(max_length, stride), return_overflowing_tokens=True,
                        return_offsets_mapping=True)
        sample_map = enc.pop("overflow_to_sample_mapping")
        offsets_all = enc.pop("offset_mapping")
        if train:
            enc["start_positions"], enc["end_positions"] = [], []
        else:
            enc["example_id"], enc["offset_mapping"] = [], []
        for i, offsets in enumerate(offsets_all):
            seq_ids = enc.sequence_ids(i)
            example = sample_map[i]
            if not train:
                enc["example_id"].append(batch["id"][example])
                enc["offset_mapping"].append(
                    [tuple(o) if seq_ids[k] == 1 else None for k, o in enumerate(offsets)])
                continue
            answers = batch["answers"][example]
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            ctx = [k for k, sid in enumerate(seq_ids) if sid == 1]
            first, last = ctx[0], ctx[-1]
            if offsets[first][0] > start_char or offsets[last][1] < end_char:
                start_pos = end_pos = 0  # the answer is not fully inside this window: point at [CLS]
            else:
                start_pos = first
                while start_pos <= last and offsets[start_pos][0] <= start_char:
                    start_pos += 1
                end_pos = last
                while end_pos >= first and offsets[end_pos][1] >= end_char:
                    end_pos -= 1
                start_pos, end_pos = start_pos - 1, end_pos + 1
            enc["start_positions"].append(start_pos)
            enc["end_positions"].append(end_pos)
        return enc

    def make_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        """A linear start/end scorer (``dropout`` is unused: the span head has none)."""
        return SpanHead(hidden_size)

    def loss(self, logits: tuple[torch.Tensor, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the start and end cross-entropies; positions past the sequence are ignored."""
        start_logits, end_logits = logits
        ignored = start_logits.size(1)
        starts = batch["start_positions"].clamp(0, ignored)
        ends = batch["end_positions"].clamp(0, ignored)
        start_loss = F.cross_entropy(start_logits.float(), starts, ignore_index=ignored)
        end_loss = F.cross_entropy(end_logits.float(), ends, ignore_index=ignored)
        return (start_loss + end_loss) / 2

    def predict(self, logits: tuple[torch.Tensor, torch.Tensor],
                batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """One batch's start and end logits as CPU NumPy arrays [batch, width]; widths vary by batch."""
        start_logits, end_logits = logits
        return start_logits.float().cpu().numpy(), end_logits.float().cpu().numpy()

    def answers(self, predictions: list[tuple[np.ndarray, np.ndarray]], features: Dataset, raw: Dataset
                ) -> dict[str, str]:
        """The best answer text for every raw example, from the in-order per-batch predictions."""
        starts = [row for batch_start, _ in predictions for row in batch_start]
        ends = [row for _, batch_end in predictions for row in batch_end]
        if len(starts) != len(features):
            raise ValueError(f"got predictions for {len(starts)} features but the split has {len(features)}")
        windows: dict[str, list[int]] = defaultdict(list)
        for i, example_id in enumerate(features["example_id"]):
            windows[example_id].append(i)
        offsets = features["offset_mapping"]
        result = {}
        for example in raw:
            idx = windows.get(example["id"], [])
            spans = decode_spans(example["context"], [starts[i] for i in idx], [ends[i] for i in idx],
                                 [offsets[i] for i in idx], self.n_best, self.max_answer_length)
            result[example["id"]] = spans[0]["text"] if spans else ""
        return result

    def compute_metrics(self, predictions: list[tuple[np.ndarray, np.ndarray]], features: Dataset,
                        raw: Dataset) -> dict[str, float]:
        """SQuAD v1.1 exact match and F1 (0–100), best over the gold answers."""
        preds = self.answers(predictions, features, raw)
        return squad_scores(preds, {ex["id"]: ex["answers"]["text"] for ex in raw})
