"""The task interface shared by every task, the task model, and dynamic-padding batching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..evaluation import evaluate
from ..sampler import LengthGroupedBatchSampler

__all__ = ["Task", "TaskModel", "PaddingCollator", "encode", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # a label the loss skips: F.cross_entropy's default ignore_index


def encode(backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
           token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Run a backbone (Hugging Face BertModel or the course's BertEncoder) and return [batch, seq, hidden]."""
    out = backbone(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    return out if isinstance(out, torch.Tensor) else out.last_hidden_state


class TaskModel(nn.Module):
    """A backbone plus a task head: ``forward(**batch)`` returns the head's logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module, task_name: str = "",
                 adapter: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter  # an optional task adapter layer between the backbone and the head
        self.head = head
        self.task_name = task_name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        """Logits for a batch; extra batch keys (labels, positions) are ignored here."""
        hidden = encode(self.backbone, input_ids, attention_mask, token_type_ids)
        if self.adapter is not None:
            hidden = self.adapter(hidden)
        return self.head(hidden, attention_mask)


@dataclass
class PaddingCollator:
    """Pad a list of tokenized examples to the longest one in the batch (dynamic padding)."""

    pad_token_id: int
    label_pad: dict[str, int] = field(default_factory=dict)  # per-key padding for list-valued labels
    keys: tuple[str, ...] | None = None  # keep only these keys (others, e.g. offsets, stay in the dataset)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Stack a batch, padding ``input_ids``/``attention_mask``/``token_type_ids`` and listed keys."""
        width = max(len(r["input_ids"]) for r in rows)
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0, **self.label_pad}
        batch: dict[str, torch.Tensor] = {}
        for key in rows[0]:
            if self.keys is not None and key not in self.keys:
                continue
            values = [r[key] for r in rows]
            if key in pads:
                values = [list(v) + [pads[key]] * (width - len(v)) for v in values]
            batch[key] = torch.tensor(values)
        return batch


class Task:
    """What the trainer needs from a task: tokenizing, a head, the loss and the metrics."""

    name: str = ""
    metric: str = ""  # the main metric, used for early stopping and comparisons
    metric_scale: float = 1.0  # what the main metric's best value is (100.0 for percentages)
    label_pad: dict[str, int] = {}
    batch_keys: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids", "labels")

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 stride: int = 0, train: bool = True) -> Dataset:
        """Turn raw rows into model inputs (lists of ids, no padding) plus what the loss needs."""
        raise NotImplementedError

    def make_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        """A fresh head for this task."""
        raise NotImplementedError

    def loss(self, logits: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss for a batch."""
        raise NotImplementedError

    def predict(self, logits: Any, batch: dict[str, torch.Tensor]) -> Any:
        """Turn one batch's logits into what ``compute_metrics`` consumes (CPU objects)."""
        raise NotImplementedError

    def compute_metrics(self, predictions: list[Any], features: Dataset, raw: Dataset) -> dict[str, float]:
        """Metrics over a whole evaluation split, from the gathered per-batch predictions."""
        raise NotImplementedError

    def printed_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics the trainer prints after each epoch (all of them unless a task says otherwise)."""
        return metrics

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable:
        """The dynamic-padding collator for this task."""
        return PaddingCollator(tokenizer.pad_token_id or 0, dict(self.label_pad), self.batch_keys)

    def batch_sampler(self, features: Dataset, batch_size: int, seed: int,
                      group_by_length: bool = True) -> LengthGroupedBatchSampler:
        """The training batch sampler: random batches of similar length (multi-task training overrides it)."""
        lengths = [len(x) for x in features["input_ids"]]
        return LengthGroupedBatchSampler(lengths, batch_size, seed, group_by_length)

    def evaluate(self, model: nn.Module, features: Dataset, raw: Dataset, tokenizer: PreTrainedTokenizerBase,
                 batch_size: int = 128, device: torch.device | str | None = None) -> dict[str, float]:
        """Metrics of ``model`` on an evaluation split (multi-task training overrides it)."""
        return evaluate(model, self, features, raw, tokenizer, batch_size, device)

    def build_model(self, backbone: nn.Module, dropout: float = 0.1) -> TaskModel:
        """Attach a fresh head for this task to ``backbone``."""
        hidden = backbone.config.hidden_size
        return TaskModel(backbone, self.make_head(hidden, dropout), self.name)
