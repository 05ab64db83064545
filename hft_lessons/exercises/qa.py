"""Checker for chapter 13's exercise: the best valid answer span, against the course's ``decode_spans``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..tasks.question_answering import decode_spans
from .base import attempt, verdict


def _window(rng: np.random.Generator, n_question: int, n_context: int, n_pad: int
            ) -> tuple[str, np.ndarray, np.ndarray, list[tuple[int, int] | None]]:
    """A fake window: [CLS] question [SEP] context [SEP] padding; random logits; offsets None off context."""
    words = [f"w{k}" for k in range(n_context)]
    context = " ".join(words)
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    offsets = [None] * (n_question + 2) + spans + [None] * (1 + n_pad)
    n = len(offsets)
    return context, rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32), offsets


def _cases() -> list[tuple[str, str, np.ndarray, np.ndarray, list, int]]:
    """(what the case tests, context, start logits, end logits, offsets, max_answer_length)."""
    rng = np.random.default_rng(0)
    cases = []
    context, s, e, off = _window(rng, 6, 20, 4)
    s[2], e[2] = 9.0, 9.0  # the best start and end logits sit on a question token
    cases.append(("a window whose highest logits are on the question", context, s, e, off, 30))
    context, s, e, off = _window(rng, 5, 20, 0)
    s[20], e[10] = 8.0, 8.0  # the best end comes before the best start
    cases.append(("a window whose best end comes before its best start", context, s, e, off, 30))
    context, s, e, off = _window(rng, 4, 25, 3)
    s[8], e[24] = 8.0, 8.0  # a 17-token span would win without the length limit
    cases.append(("a window where a long span would score best", context, s, e, off, 3))
    for _ in range(20):
        context, s, e, off = _window(rng, int(rng.integers(3, 10)), int(rng.integers(1, 40)),
                                     int(rng.integers(0, 5)))
        cases.append(("a random window", context, s, e, off, int(rng.choice([1, 2, 5, 30]))))
    return cases


def _span_problem(fn: Callable) -> str | None:
    """What is wrong with ``fn``'s span where it first differs from decode_spans; None if nothing."""
    for what, context, s, e, offsets, max_len in _cases():
        out, problem = attempt(fn, s.copy(), e.copy(), list(offsets), max_len)
        if problem is not None:
            return problem if problem == "not implemented yet" else f"on {what}: {problem}"
        if not isinstance(out, tuple | list) or len(out) != 2:
            return f"returned {type(out).__name__}; return a pair (start_token, end_token)"
        try:
            i, j = (int(v) for v in out)
        except (TypeError, ValueError):
            return f"returned {out!r}; return two integer token positions"
        where = f"on {what} (max_answer_length={max_len})"
        if not (0 <= i < len(offsets) and 0 <= j < len(offsets)):
            return f"{where}: ({i}, {j}) is outside the window's {len(offsets)} positions"
        if offsets[i] is None or offsets[j] is None:
            return (f"{where}: your span starts or ends on a token outside the context (offset None: "
                    f"[CLS], the question, [SEP] or padding)")
        if j < i:
            return f"{where}: your span ends before it starts (end token < start token)"
        if j - i + 1 > max_len:
            return f"{where}: your span has {j - i + 1} tokens, more than max_answer_length"
        ref = decode_spans(context, [s], [e], [offsets], n_best=len(offsets), max_answer_length=max_len)[0]
        gap = ref["score"] - float(s[i] + e[j])
        if gap > 1e-5:
            return (f"{where}: a valid span scores {gap:.2f} more than yours; "
                    f"search every pair i <= j, not only the best start and the best end")
    return None


def check_best_span(fn: Callable) -> bool:
    """Check ``fn(start_logits, end_logits, offsets, max_answer_length) -> (i, j)`` against decode_spans."""
    return verdict(_span_problem(fn))
