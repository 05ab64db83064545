"""Sentence classification (SST-2): pooling, a linear head, cross-entropy and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import SST2_LABELS
from .base import Task

__all__ = ["ClassificationHead", "SequenceClassificationTask", "pool", "SST2_LABELS"]


POOLING = ("mean", "cls")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str = "mean") -> torch.Tensor:
    """Pool [batch, seq, hidden] to [batch, hidden] by the [CLS] vector or the masked mean."""
    if how == "cls":
        return hidden[:, 0]
    if how != "mean":
        raise ValueError(f"unknown pooling {how!r}; allowed: {', '.join(POOLING)}")
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ClassificationHead(nn.Module):
    """Pool the sequence, then dropout and one linear layer to the class logits."""

    def __init__(
        self, hidden_size: int, num_labels: int, dropout: float = 0.1, pooling: str = "mean"
    ) -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"unknown pooling {pooling!r}; allowed: {', '.join(POOLING)}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits [batch, num_labels]."""
        return self.classifier(self.dropout(pool(hidden, attention_mask, self.pooling)))


class SequenceClassificationTask(Task):
    """A single-sentence classification task such as SST-2."""

    def __init__(
        self,
        name: str = "sst2",
        text_column: str = "sentence",
        labels: tuple[str, ...] = SST2_LABELS,
        pooling: str = "mean",
    ) -> None:
        self.name, self.metric = name, "accuracy"
        self.text_column, self.labels, self.pooling = text_column, labels, pooling

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int = 0,
                 train: bool = True) -> Dataset:
        """Tokenize sentences (truncated to ``max_length``) and keep the integer labels."""
        def fn(batch):
            enc = tokenizer(batch[self.text_column], truncation=True, max_length=max_length)
            enc["labels"] = batch["label"]
            return enc
        return split.map(fn, batched=True, remove_columns=split.column_names)

    def make_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        """A pooled linear classifier."""
        return ClassificationHead(hidden_size, len(self.labels), dropout, self.pooling)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy against the labels."""
        return F.cross_entropy(logits.float(), batch["labels"])

    def predict(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted class ids and gold labels for one batch."""
        return logits.argmax(-1).cpu(), batch["labels"].cpu()

    def compute_metrics(self, predictions: list[tuple[torch.Tensor, torch.Tensor]], features: Dataset,
                        raw: Dataset) -> dict[str, float]:
        """Accuracy over the split."""
        pred = torch.cat([p for p, _ in predictions])
        gold = torch.cat([g for _, g in predictions])
        return {"accuracy": (pred == gold).float().mean().item()}
