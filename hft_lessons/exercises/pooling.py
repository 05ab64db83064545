"""Checker for chapter 0's exercise: mean pooling over the real tokens of a padded batch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import attempt, close_to, verdict


def _mean_pool_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn(hidden, attention_mask)`` and pooling each sentence alone, or None."""
    g = torch.Generator().manual_seed(0)
    lengths = [7, 4, 1]  # a full sentence, a padded one, and one with a single real token
    hidden = torch.randn(3, 7, 16, generator=g)
    mask = torch.tensor([[1] * n + [0] * (7 - n) for n in lengths])
    out, problem = attempt(fn, hidden.clone(), mask.clone())
    if problem is not None:
        return problem
    ref = torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(lengths)])  # each sentence, no padding
    problem = close_to("the pooled batch", out, ref, atol)
    if problem is None or out.shape != ref.shape:
        return problem
    wrong = [i for i in range(3) if close_to("", out[i], ref[i], atol) is not None]
    if wrong == [1, 2]:
        return problem + "; only the padded sentences differ: do padding positions count?"
    return problem + f"; sentences {wrong} differ (sentence lengths {lengths} of 7 positions)"


def check_mean_pool(fn: Callable, atol: float = 1e-5) -> bool:
    """Check ``fn(hidden, attention_mask) -> [batch, hidden]`` against each sentence's own mean."""
    return verdict(_mean_pool_problem(fn, atol))
