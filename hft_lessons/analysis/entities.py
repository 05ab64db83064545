"""CoNLL-2003 error analysis: predicted tags, per-type entity scores and their plot, error kinds, highlighted
sentences."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from datasets import Dataset
from matplotlib.figure import Figure
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..evaluation import predict_rows
from ..metrics import check_tag_lists, tags_to_spans
from ..tasks.base import Task

__all__ = [
    "ENTITY_TYPES",
    "ERROR_KINDS",
    "TYPE_COLORS",
    "EntityError",
    "predict_tags",
    "count_entities",
    "per_type_scores",
    "plot_type_scores",
    "sentence_errors",
    "error_kinds",
    "sentences_with_errors",
    "bracketed",
    "highlight",
    "highlight_text",
]

ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")
ERROR_KINDS = ("wrong type", "wrong boundary", "wrong type and boundary", "missed", "spurious")
TYPE_COLORS = {"PER": "#ffd8a8", "ORG": "#a5d8ff", "LOC": "#b2f2bb", "MISC": "#e5dbff"}
_OTHER_COLOR = "#dee2e6"

Span = tuple[str, int, int]  # (type, first_word, last_word), as metrics.tags_to_spans returns it


class EntityError(NamedTuple):
    """One entity-level error: its kind, the gold spans it touches and the predicted span (None if missed)."""

    kind: str
    gold: tuple[Span, ...]
    pred: Span | None


# --- predictions ------------------------------------------------------------------------------------


def predict_tags(
    model: nn.Module,
    task: Task,
    features: Dataset,
    raw: Dataset | None,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tag lists per sentence, at each word's first sub-token, as training's evaluation
    scores them."""
    labels = getattr(task, "labels", None)
    if labels is None:
        raise ValueError(
            f"predict_tags needs a token-classification task with .labels, got {type(task).__name__}"
        )
    if "labels" not in features.column_names:
        raise ValueError(
            f"features need a 'labels' column (tokenize with the task); got {features.column_names}"
        )
    if len(features) == 0:
        raise ValueError("features are empty: nothing to predict")
    rows = [row for one in predict_rows(model, task, features, tokenizer, batch_size, device) for row in one]
    gold = [[labels[i] for i in g] for _, g in rows]
    pred = [[labels[i] for i in p] for p, _ in rows]
    return gold, pred


# --- scores -------------------------------------------------------------------------------------------


def _check_sentences(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    for name, tags in (("gold", gold), ("pred", pred)):
        if isinstance(tags, str) or (len(tags) and isinstance(tags[0], str)):
            raise ValueError(f"{name} must be a list of sentences (lists of tags), got a single sentence")
    check_tag_lists(gold, pred)


def count_entities(tag_lists: Sequence[Sequence[str]]) -> Counter[str]:
    """Number of entities per type over a list of BIO tag sequences."""
    if isinstance(tag_lists, str) or (len(tag_lists) and isinstance(tag_lists[0], str)):
        raise ValueError("tag_lists must be a list of sentences (lists of tags), got a single sentence")
    return Counter(kind for tags in tag_lists for kind, _, _ in tags_to_spans(tags))


def _prf(correct: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": n_gold}


def per_type_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                    types: Sequence[str] | None = None, overall: bool = False) -> dict[str, dict[str, float]]:
    """Entity-level precision, recall, F1 and support (gold count) per type; ``overall`` adds the micro
    average."""
    _check_sentences(gold, pred)
    gold_spans = [set(tags_to_spans(g)) for g in gold]
    pred_spans = [set(tags_to_spans(p)) for p in pred]
    n_gold = Counter(kind for spans in gold_spans for kind, _, _ in spans)
    n_pred = Counter(kind for spans in pred_spans for kind, _, _ in spans)
    correct = Counter(kind for g, p in zip(gold_spans, pred_spans, strict=True) for kind, _, _ in g & p)
    kinds = list(types) if types is not None else sorted(set(n_gold) | set(n_pred))
    scores = {kind: _prf(correct[kind], n_pred[kind], n_gold[kind]) for kind in kinds}
    if overall:
        scores["overall"] = _prf(sum(correct.values()), sum(n_pred.values()), sum(n_gold.values()))
    return scores


def plot_type_scores(scores_by_method: Mapping[str, Mapping[str, Mapping[str, float]]],
                     metrics: Sequence[str] = ("precision", "recall", "f1"), title: str = "") -> Figure:
    """Grouped bars: one panel per metric, one group per entity type, one bar per method (in percent)."""
    if not scores_by_method:
        raise ValueError("scores_by_method is empty: pass {method: per_type_scores(...)}")
    kinds: list[str] = []
    for scores in scores_by_method.values():
        kinds += [k for k in scores if k not in kinds]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once, as the cell's value
    width = 0.8 / len(scores_by_method)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for j, (method, scores) in enumerate(scores_by_method.items()):
            xs = [i + (j - (len(scores_by_method) - 1) / 2) * width for i in range(len(kinds))]
            ax.bar(xs, [100 * scores.get(k, {}).get(metric, 0.0) for k in kinds], width, label=method)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set(ylabel=f"{metric} (%)", title=metric, ylim=(0, 105))
        ax.grid(axis="y", alpha=0.3)
        if not kinds:
            ax.text(0.5, 0.5, "no entities", ha="center", va="center", transform=ax.transAxes)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: bars reach 100
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- error kinds --------------------------------------------------------------------------------------


def _overlap(a: Span, b: Span) -> bool:
    return a[1] <= b[2] and b[1] <= a[2]


def sentence_errors(gold: Sequence[str], pred: Sequence[str]) -> list[EntityError]:
    """The entity errors of one sentence: wrong type, wrong boundary, both, missed or spurious."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} tags but the prediction has {len(pred)}")
    gold_spans, pred_spans = tags_to_spans(gold), tags_to_spans(pred)
    exact = set(gold_spans) & set(pred_spans)
    open_gold = [g for g in gold_spans if g not in exact]
    touched: set[Span] = set()
    errors = []
    for p in pred_spans:
        if p in exact:
            continue
        hits = tuple(g for g in open_gold if _overlap(g, p))
        touched.update(hits)
        if not hits:
            kind = "spurious"
        elif any(g[1:] == p[1:] for g in hits):
            kind, hits = "wrong type", tuple(g for g in hits if g[1:] == p[1:])
        elif any(g[0] == p[0] for g in hits):
            kind = "wrong boundary"
        else:
            kind = "wrong type and boundary"
        errors.append(EntityError(kind, hits, p))
    errors += [EntityError("missed", (g,), None) for g in open_gold if g not in touched]
    return errors


def error_kinds(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Counter[str]:
    """How many errors of each kind (``ERROR_KINDS``, zeros included) over a list of sentences."""
    _check_sentences(gold, pred)
    counts: Counter[str] = Counter(dict.fromkeys(ERROR_KINDS, 0))
    for g, p in zip(gold, pred, strict=True):
        counts.update(e.kind for e in sentence_errors(g, p))
    return counts


def sentences_with_errors(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> list[int]:
    """Indices of the sentences whose predicted entities differ from the gold ones."""
    _check_sentences(gold, pred)
    return [
        i
        for i, (g, p) in enumerate(zip(gold, pred, strict=True))
        if set(tags_to_spans(g)) != set(tags_to_spans(p))
    ]


# --- rendering ----------------------------------------------------------------------------------------


def _check_words(words: Sequence[str], **tag_lists: Sequence[str]) -> None:
    if isinstance(words, str):
        raise ValueError("words must be a list of words, got a string")
    for name, tags in tag_lists.items():
        if len(tags) != len(words):
            raise ValueError(f"{len(words)} words but {len(tags)} {name} tags")


def bracketed(words: Sequence[str], tags: Sequence[str]) -> str:
    """The sentence as plain text with entities marked like ``[Germany|LOC]``."""
    _check_words(words, given=tags)
    starts = {a: (kind, b) for kind, a, b in tags_to_spans(tags)}
    out, i = [], 0
    while i < len(words):
        if i in starts:
            kind, b = starts[i]
            out.append(f"[{' '.join(words[i:b + 1])}|{kind}]")
            i = b + 1
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _html_line(words: Sequence[str], spans: Sequence[Span], wrong: set[Span]) -> str:
    starts = {a: (kind, b) for kind, a, b in spans}
    out, i = [], 0
    while i < len(words):
        if i not in starts:
            out.append(html.escape(words[i]))
            i += 1
            continue
        kind, b = starts[i]
        border = "2px dashed #e03131" if (kind, i, b) in wrong else "1px solid #868e96"
        out.append(f'<span style="background:{TYPE_COLORS.get(kind, _OTHER_COLOR)};border:{border};'
                   f'border-radius:4px;padding:0 3px">{html.escape(" ".join(words[i:b + 1]))}'
                   f'<sub style="font-size:0.7em;margin-left:2px">{html.escape(kind)}</sub></span>')
        i = b + 1
    return " ".join(out)


def highlight(words: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> str:
    """HTML: the sentence twice, gold then predicted entities coloured by type; wrong ones outlined in red."""
    _check_words(words, gold=gold, pred=pred)
    gold_spans, pred_spans = tags_to_spans(gold), tags_to_spans(pred)
    wrong_gold, wrong_pred = set(gold_spans) - set(pred_spans), set(pred_spans) - set(gold_spans)
    rows = [
        ("gold", _html_line(words, gold_spans, wrong_gold)),
        ("pred", _html_line(words, pred_spans, wrong_pred)),
    ]
    cells = "".join(
        f'<div style="margin:2px 0"><b style="display:inline-block;width:3em">{name}</b>{line}</div>'
        for name, line in rows
    )
    return f'<div style="line-height:1.9;font-family:sans-serif">{cells}</div>'


def highlight_text(words: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> str:
    """Plain-text fallback of ``highlight``: a ``gold:`` and a ``pred:`` line with ``[words|TYPE]``
    entities."""
    _check_words(words, gold=gold, pred=pred)
    return f"gold: {bracketed(words, gold)}\npred: {bracketed(words, pred)}"
