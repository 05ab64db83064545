"""Evaluation metrics: entity-level NER scores (seqeval) and the official SQuAD v1.1 EM/F1."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import get_entities

__all__ = [
    "check_tag_lists",
    "entity_scores",
    "tags_to_spans",
    "normalize_answer",
    "exact_match",
    "f1_score",
    "squad_scores",
]


# --- Named entities ------------------------------------------------------------------------------


def check_tag_lists(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> None:
    """Raise one clear line unless gold and predicted tags have the same sentences and lengths."""
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"gold has {len(gold_tags)} sentences but predictions have {len(pred_tags)}")
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags but the prediction has {len(p)}")


def entity_scores(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 (seqeval, conlleval mode): overall and ``f1_PER``-style per type."""
    check_tag_lists(gold_tags, pred_tags)
    gold, pred = [list(s) for s in gold_tags], [list(s) for s in pred_tags]
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    scores = {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
              "f1": float(micro["f1-score"])}
    types = sorted(k for k in report if not k.endswith(" avg"))
    for kind in types:
        scores[f"precision_{kind}"] = float(report[kind]["precision"])
        scores[f"recall_{kind}"] = float(report[kind]["recall"])
        scores[f"f1_{kind}"] = float(report[kind]["f1-score"])
    return scores


def tags_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities in a BIO tag sequence as ``(type, first_word, last_word)``, decoded like conlleval."""
    return [(kind, start, end) for kind, start, end in get_entities(list(tags))]


# --- SQuAD v1.1 (the official evaluate-v1.1.py, unchanged in behaviour) ------------------------


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, the articles a/an/the and extra whitespace (official SQuAD v1.1)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, ground_truth: str) -> bool:
    """True when the normalized prediction equals the normalized gold answer."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 (0–1) between the normalized prediction and gold answer."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 in percent (0–100), each the best over an example's gold answers."""
    if not references:
        raise ValueError("no references: squad_scores needs at least one question")
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {missing[0]!r}")
    em = f1 = 0.0
    for qid, golds in references.items():
        if isinstance(golds, str) or not golds:
            raise ValueError(f"question {qid!r}: references must be a non-empty list of answer strings")
        em += max(float(exact_match(predictions[qid], g)) for g in golds)
        f1 += max(f1_score(predictions[qid], g) for g in golds)
    n = len(references)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
