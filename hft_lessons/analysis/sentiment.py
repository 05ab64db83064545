"""Error analysis for sentence classification (SST-2): predictions with probabilities, confusion matrices,
slices such as negation and contrast, and the most confident mistakes."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from datasets import Dataset
from matplotlib.figure import Figure
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..data import SST2_LABELS
from ..evaluation import predict_rows
from ..tasks.base import Task

__all__ = ["NEGATION_WORDS", "CONTRAST_WORDS", "SLICES", "predict_split", "confusion_matrix",
           "plot_confusion_matrix", "sentence_words", "slice_mask", "accuracy", "slice_report",
           "confident_mistakes", "padding_share"]

NEGATION_WORDS = (
    "not",
    "n't",
    "no",
    "never",
    "nothing",
    "nobody",
    "none",
    "neither",
    "nor",
    "nowhere",
    "cannot",
    "without",
    "hardly",
)
CONTRAST_WORDS = ("but", "although", "though", "yet", "however")
SLICES: dict[str, tuple[str, ...]] = {"negation": NEGATION_WORDS, "contrast": CONTRAST_WORDS}
_WORD = re.compile(r"[\w']+")


def predict_split(
    model: nn.Module,
    task: Task,
    features: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predicted labels [N], gold labels [N] and class probabilities [N, C] of a tokenized split, in its
    order."""
    if "labels" not in features.column_names:
        raise ValueError(f"features need a 'labels' column (tokenize with a classification task); "
                         f"got columns {features.column_names}")
    if len(features) == 0:
        raise ValueError("features are empty: nothing to predict")
    # training's evaluation batching
    rows = predict_rows(
        model,
        task,
        features,
        tokenizer,
        batch_size,
        device,
        predict_fn=lambda logits, batch: (logits.float().softmax(-1).cpu(), batch["labels"].cpu()),
    )
    probs = torch.cat([p for p, _ in rows])
    gold = torch.cat([g for _, g in rows])
    return probs.argmax(-1), gold, probs


def _as_long(values: Sequence[int] | torch.Tensor, what: str) -> torch.Tensor:
    out = torch.as_tensor(values)
    if out.ndim != 1:
        raise ValueError(f"{what} must be one label per sentence (1-D), got shape {tuple(out.shape)}")
    if out.dtype.is_floating_point or out.dtype == torch.bool:
        raise ValueError(f"{what} must be integer class ids, got {out.dtype}")
    return out.long()


def _check_same_length(**named: Sequence[Any] | torch.Tensor) -> int:
    sizes = {name: len(v) for name, v in named.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("lengths differ: " + ", ".join(f"{k} has {n}" for k, n in sizes.items()))
    return next(iter(sizes.values()))


def confusion_matrix(gold: Sequence[int] | torch.Tensor, pred: Sequence[int] | torch.Tensor,
                     num_labels: int) -> torch.Tensor:
    """Counts [num_labels, num_labels]: row = gold class, column = predicted class."""
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    gold, pred = _as_long(gold, "gold"), _as_long(pred, "pred")
    _check_same_length(gold=gold, pred=pred)
    for name, values in (("gold", gold), ("pred", pred)):
        if len(values) and (values.min() < 0 or values.max() >= num_labels):
            raise ValueError(f"{name} has labels outside 0..{num_labels - 1}: "
                             f"{sorted(set(values[(values < 0) | (values >= num_labels)].tolist()))}")
    return torch.bincount(gold * num_labels + pred, minlength=num_labels**2).reshape(num_labels, num_labels)


def plot_confusion_matrix(matrix: torch.Tensor | Sequence[Sequence[int]], labels: Sequence[str],
                          title: str = "") -> Figure:
    """A heatmap of a confusion matrix with each cell's count and its share of the gold row."""
    counts = torch.as_tensor(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"matrix must be square [C, C], got shape {tuple(counts.shape)}")
    if counts.shape[0] != len(labels):
        raise ValueError(f"the matrix has {counts.shape[0]} classes but {len(labels)} labels were given")
    rows = counts.sum(1, keepdim=True).clamp(min=1)
    share = (counts.float() / rows).numpy()
    fig, ax = plt.subplots(figsize=(4, 3.5))
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once, as the cell's value
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{int(counts[i, j])}\n({100 * share[i, j]:.0f}%)", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    fig.tight_layout()
    return fig


def sentence_words(sentence: str) -> list[str]:
    """Lower-cased words of a sentence; SST-2's split contractions ("does n't") and joined ones ("doesn't")
    alike."""
    return _WORD.findall(sentence.lower().replace("’", "'"))


def _matches(word: str, cue: str) -> bool:
    # a cue with an apostrophe is a contraction suffix: "n't" matches "n't", "doesn't" and "can't"
    return word == cue or ("'" in cue and word.endswith(cue))


def slice_mask(sentences: Sequence[str], words: Sequence[str]) -> torch.Tensor:
    """A bool mask [N]: True where a sentence contains any of ``words`` as a whole word (or contraction
    suffix)."""
    if isinstance(words, str):
        raise ValueError(f"words must be a list of cue words, not one string {words!r}")
    cues = [w.lower().replace("’", "'") for w in words]
    if not cues:
        raise ValueError("words is empty: give at least one cue word")
    sentences = list(sentences)  # also a datasets Column
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise ValueError(f"sentence #{i} is a {type(s).__name__}, not a string")
    return torch.tensor([any(_matches(w, c) for w in sentence_words(s) for c in cues) for s in sentences],
                        dtype=torch.bool)


def accuracy(gold: Sequence[int] | torch.Tensor, pred: Sequence[int] | torch.Tensor,
             mask: torch.Tensor | None = None) -> float:
    """The share of correct predictions, over the sentences where ``mask`` is True (all if None); NaN if
    none."""
    gold, pred = _as_long(gold, "gold"), _as_long(pred, "pred")
    _check_same_length(gold=gold, pred=pred)
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        _check_same_length(gold=gold, mask=mask)
        gold, pred = gold[mask], pred[mask]
    return (gold == pred).float().mean().item() if len(gold) else math.nan


def slice_report(
    sentences: Sequence[str],
    gold: Sequence[int] | torch.Tensor,
    pred: Sequence[int] | torch.Tensor,
    slices: Mapping[str, Sequence[str]] = SLICES,
) -> list[dict[str, Any]]:
    """One row per slice (plus "all"): its size, share of the split, accuracy and errors, for
    ``format_table``."""
    gold, pred, sentences = _as_long(gold, "gold"), _as_long(pred, "pred"), list(sentences)
    n = _check_same_length(sentences=sentences, gold=gold, pred=pred)
    masks = {"all": torch.ones(n, dtype=torch.bool)}
    masks.update({name: slice_mask(sentences, cues) for name, cues in slices.items()})
    wrong = gold != pred
    return [
        {
            "slice": name,
            "sentences": int(m.sum()),
            "share_pct": round(100 * m.float().mean().item(), 1) if n else 0.0,
            "accuracy": accuracy(gold, pred, m),
            "errors": int((wrong & m).sum()),
        }
        for name, m in masks.items()
    ]


def confident_mistakes(sentences: Sequence[str], gold: Sequence[int] | torch.Tensor,
                       pred: Sequence[int] | torch.Tensor, probs: torch.Tensor, k: int = 10,
                       labels: Sequence[str] = SST2_LABELS) -> list[dict[str, Any]]:
    """The ``k`` wrong predictions with the highest probability on the predicted class, most confident
    first."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    gold, pred, sentences = _as_long(gold, "gold"), _as_long(pred, "pred"), list(sentences)
    probs = torch.as_tensor(probs, dtype=torch.float)
    _check_same_length(sentences=sentences, gold=gold, pred=pred, probs=probs)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(
            f"probs must be [N, {len(labels)}] (one column per label), got shape {tuple(probs.shape)}"
        )
    confidence = probs.gather(1, pred[:, None]).squeeze(1) if len(pred) else probs.new_zeros(0)
    wrong = (gold != pred).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: (-confidence[i].item(), i))
    return [{"sentence": sentences[i], "gold": labels[int(gold[i])], "pred": labels[int(pred[i])],
             "probability": round(confidence[i].item(), 4)} for i in wrong[:k]]


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of positions that are padding when each batch is padded to its longest example."""
    if not batches:
        raise ValueError("batches is empty: nothing to pad")
    padded = real = 0
    for batch in batches:
        if not batch:
            raise ValueError("a batch is empty")
        sizes = [lengths[i] for i in batch]
        padded += max(sizes) * len(sizes)
        real += sum(sizes)
    return 1 - real / padded if padded else 0.0
