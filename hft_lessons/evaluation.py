"""Evaluation: a model's per-example predictions over a split, in order, and the task's metrics on them.

It sits below ``tasks``: a task is anything with ``collator``, ``predict`` and ``compute_metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

if TYPE_CHECKING:  # for type hints only: tasks import this module
    from .tasks.base import Task

__all__ = ["predict_rows", "evaluate", "move_to"]


def move_to(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """The batch with every tensor on ``device``."""
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_rows(model: nn.Module, task: Task, features: Dataset, tokenizer: PreTrainedTokenizerBase,
                 batch_size: int = 128,
                 device: torch.device | str | None = None, predict_fn: Any = None) -> list[Any]:
    """Per-example predictions (``task.predict``, or ``predict_fn(logits, batch)``) in the split's order."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    predict_fn = predict_fn or task.predict
    was_training = model.training
    model.eval()
    lengths = [len(x) for x in features["input_ids"]]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # sort by length: little padding
    collate = task.collator(tokenizer)
    preds: list[Any] = [None] * len(order)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = move_to(collate([features[i] for i in idx]), device)
        out = predict_fn(model(**batch), batch)
        for j, i in enumerate(idx):  # scatter per-example predictions back to dataset order
            preds[i] = _row(out, j)
    model.train(was_training)
    return preds


def evaluate(model: nn.Module, task: Task, features: Dataset, raw: Dataset,
             tokenizer: PreTrainedTokenizerBase, batch_size: int = 128,
             device: torch.device | str | None = None) -> dict[str, float]:
    """Run ``model`` over an evaluation split in order and return the task's metrics."""
    predictions = predict_rows(model, task, features, tokenizer, batch_size, device)
    return task.compute_metrics(predictions, features, raw)


def _row(out: Any, j: int) -> Any:
    """Row ``j`` of a batch's predictions, kept as a one-row batch (tuples are sliced element-wise)."""
    if isinstance(out, tuple):
        return tuple(_row(o, j) for o in out)
    return out[j : j + 1]
