"""Error analysis for extractive QA (SQuAD).

Per-question predictions and scores, worst errors, question types.

The predictions come from the package's own evaluation path (``evaluation.evaluate`` batching, then
``QuestionAnsweringTask.answers``, i.e. ``decode_spans``), so they are exactly the answers behind the
EM/F1 that ``train`` reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from datasets import Dataset
from matplotlib.figure import Figure
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..evaluation import predict_rows
from ..metrics import exact_match, f1_score
from ..tasks.question_answering import QuestionAnsweringTask

__all__ = [
    "QUESTION_TYPES",
    "window_logits",
    "predict_answers",
    "per_question_scores",
    "worst_errors",
    "question_type",
    "scores_by_type",
    "context_snippet",
    "plot_scores_by_type",
]

QUESTION_TYPES = ("what", "who", "when", "where", "how many", "which", "why", "other")
_WH = {"what": "what", "who": "who", "whom": "who", "whose": "who", "when": "when", "where": "where",
       "which": "which", "why": "why", "how": "how"}
_WORD = re.compile(r"[a-z]+")


def _check_task(task: object) -> QuestionAnsweringTask:
    if not isinstance(task, QuestionAnsweringTask):
        raise ValueError(
            f"task must be a QuestionAnsweringTask (get_task('squad')), got {type(task).__name__}"
        )
    return task


def _feature_predictions(model: nn.Module, task: QuestionAnsweringTask, features, tokenizer, batch_size: int,
                         device: torch.device | str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The per-feature (one-row) predictions ``evaluation.evaluate`` scores, before any metric."""
    if "offset_mapping" not in features.column_names:
        raise ValueError("features have no offset_mapping: tokenize the split with train=False")
    return predict_rows(model, task, features, tokenizer, batch_size, device)


def window_logits(
    model: nn.Module,
    task: QuestionAnsweringTask,
    features: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each window's ``(start_logits, end_logits)`` as 1-D arrays, in feature order, cut to the window's
    length."""
    _check_task(task)
    rows = _feature_predictions(model, task, features, tokenizer, batch_size, device)
    return [(start[0, :len(ids)], end[0, :len(ids)])
            for (start, end), ids in zip(rows, features["input_ids"], strict=True)]


def predict_answers(model: nn.Module, task: QuestionAnsweringTask, features: Dataset, raw: Dataset,
                    tokenizer: PreTrainedTokenizerBase,
                    batch_size: int = 128, device: torch.device | str | None = None) -> dict[str, str]:
    """The predicted answer text per question id: exactly the answers ``task.evaluate`` scores."""
    _check_task(task)
    rows = _feature_predictions(model, task, features, tokenizer, batch_size, device)
    return task.answers(rows, features, raw)


def question_type(question: str) -> str:
    """The question's type from its first wh-word: what/who/when/where/how many/which/why, else other."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    words = _WORD.findall(question.lower())
    for i, word in enumerate(words):
        kind = _WH.get(word)
        if kind == "how":
            return "how many" if i + 1 < len(words) and words[i + 1] == "many" else "other"
        if kind is not None:
            return kind
    return "other"


def per_question_scores(predictions: Mapping[str, str], raw: Dataset) -> list[dict[str, Any]]:
    """One row per question: id, question, type, gold answers, prediction, em and f1 (0–1, best over golds).

    Rows also keep the ``context`` and the first gold answer's ``answer_start`` (for ``context_snippet``).
    """
    if len(raw) == 0:
        raise ValueError("no questions: the raw split is empty")
    rows = []
    for example in raw:
        qid, golds = example["id"], list(example["answers"]["text"])
        if qid not in predictions:
            raise ValueError(f"question {qid!r} has no prediction (predictions cover {len(predictions)} ids)")
        if not golds:
            raise ValueError(f"question {qid!r} has no gold answer")
        pred = predictions[qid]
        rows.append({"id": qid, "question": example["question"], "type": question_type(example["question"]),
                     "gold": golds, "prediction": pred,
                     "em": max(float(exact_match(pred, g)) for g in golds),
                     "f1": max(f1_score(pred, g) for g in golds),
                     "context": example["context"], "answer_start": example["answers"]["answer_start"][0]})
    return rows


def worst_errors(rows: Sequence[Mapping[str, Any]], n: int = 10) -> list[Mapping[str, Any]]:
    """The ``n`` wrong answers (em 0) with the lowest F1, lowest first; ties keep the split's order."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    wrong = [r for r in rows if r["em"] < 1]
    return sorted(wrong, key=lambda r: r["f1"])[:n]


def scores_by_type(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per question type (in ``QUESTION_TYPES`` order, present types only): n, exact_match and f1 in
    percent."""
    if not rows:
        raise ValueError("no rows: score some questions with per_question_scores first")
    out = []
    for kind in QUESTION_TYPES:
        group = [r for r in rows if r["type"] == kind]
        if group:
            out.append({"type": kind, "n": len(group),
                        "exact_match": 100.0 * sum(r["em"] for r in group) / len(group),
                        "f1": 100.0 * sum(r["f1"] for r in group) / len(group)})
    return out


def context_snippet(context: str, start: int, length: int, width: int = 60) -> str:
    """``width`` characters either side of ``context[start:start + length]``, the span marked with [[ ]]."""
    if not 0 <= start <= start + length <= len(context):
        raise ValueError(
            f"span ({start}, {start + length}) is outside the context of {len(context)} characters"
        )
    left, right = max(0, start - width), min(len(context), start + length + width)
    return ("…" if left > 0 else "") + context[left:start] + "[[" + context[start:start + length] + "]]" + \
        context[start + length:right] + ("…" if right < len(context) else "")


def plot_scores_by_type(by_type: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
                        metric: str = "f1", title: str = "") -> Figure:
    """Bars of ``metric`` per question type: one run (a ``scores_by_type`` list) or several (name → list)."""
    runs = {"": by_type} if not isinstance(by_type, Mapping) else dict(by_type)
    if not runs or not all(runs.values()):
        raise ValueError("nothing to plot: pass scores_by_type(...) rows, or a dict of them per run")
    if metric not in ("f1", "exact_match"):
        raise ValueError(f"unknown metric {metric!r}; allowed: f1, exact_match")
    first = next(iter(runs.values()))
    types = [r["type"] for r in first]
    counts = {r["type"]: r["n"] for r in first}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(types) + 2), 3.8))
    plt.close(fig)  # returned, not auto-shown
    width = 0.8 / len(runs)
    for k, (name, rows) in enumerate(runs.items()):
        values = {r["type"]: r[metric] for r in rows}
        x = np.arange(len(types)) + (k - (len(runs) - 1) / 2) * width
        ax.bar(x, [values.get(t, 0.0) for t in types], width, label=name or None)
    ax.set_xticks(np.arange(len(types)), [f"{t}\n(n={counts[t]})" for t in types], fontsize=8)
    ax.set(ylabel=f"{metric.replace('_', ' ')} (%)", ylim=(0, 100),
           title=title or f"{metric.replace('_', ' ')} by question type")
    ax.grid(alpha=0.3, axis="y")
    if len(runs) > 1:
        ax.legend(fontsize=8, ncol=min(5, len(runs)))
    fig.tight_layout()
    return fig
