"""Named-entity recognition (CoNLL-2003): label alignment, a per-token head and entity-level F1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import NER_LABELS
from ..metrics import entity_scores
from .base import IGNORE_INDEX, Task

__all__ = ["IGNORE_INDEX", "TokenClassificationHead", "TokenClassificationTask", "align_labels"]


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Word labels → token labels: the first sub-token of a word gets its label, the rest -100."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE_INDEX if word is None or word == previous else int(word_labels[word]))
        previous = word
    return labels


class TokenClassificationHead(nn.Module):
    """Dropout and one linear layer applied to every token: [batch, seq, num_labels]."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token tag logits [batch, seq, num_labels]."""
        return self.classifier(self.dropout(hidden))


class TokenClassificationTask(Task):
    """A word-level tagging task such as CoNLL-2003 NER, scored with entity-level F1."""

    label_pad = {"labels": IGNORE_INDEX}

    def __init__(self, name: str = "conll2003", tokens_column: str = "tokens", tags_column: str = "ner_tags",
                 labels: Sequence[str] = tuple(NER_LABELS)) -> None:
        self.name, self.metric = name, "f1"
        self.tokens_column, self.tags_column, self.labels = tokens_column, tags_column, tuple(labels)

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int = 0,
                 train: bool = True) -> Dataset:
        """Tokenize pre-split words (truncated to ``max_length``) and align the tags to sub-tokens."""
        def fn(batch):
            enc = tokenizer(batch[self.tokens_column], is_split_into_words=True, truncation=True,
                            max_length=max_length)
            enc["labels"] = [
                align_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch[self.tags_column])
            ]
            return enc
        return split.map(fn, batched=True, remove_columns=split.column_names)

    def make_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        """A per-token linear tagger."""
        return TokenClassificationHead(hidden_size, len(self.labels), dropout)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token-level cross-entropy, ignoring sub-word continuations, special tokens and padding."""
        return F.cross_entropy(
            logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX
        )

    def predict(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> list[tuple[list[int], list[int]]]:
        """Per sentence: (predicted, gold) tag ids at the labelled (first sub-token) positions."""
        pred, gold = logits.argmax(-1).cpu(), batch["labels"].cpu()
        keep = gold != IGNORE_INDEX
        return [(p[k].tolist(), g[k].tolist()) for p, g, k in zip(pred, gold, keep, strict=True)]

    def printed_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The overall precision, recall and F1; the per-entity-type scores stay in the history."""
        return {k: v for k, v in metrics.items() if k.rpartition("_")[2] not in self.entity_types}

    @property
    def entity_types(self) -> set[str]:
        """The entity types of the tag set (``B-PER`` → ``PER``)."""
        return {label[2:] for label in self.labels if label != "O"}

    def compute_metrics(self, predictions: list[list[tuple[list[int], list[int]]]], features: Dataset,
                        raw: Dataset) -> dict[str, float]:
        """Entity-level precision, recall and F1 (overall and per entity type) with seqeval."""
        rows = [row for batch in predictions for row in batch]
        pred_tags = [[self.labels[i] for i in p] for p, _ in rows]
        gold_tags = [[self.labels[i] for i in g] for _, g in rows]
        return entity_scores(gold_tags, pred_tags)
