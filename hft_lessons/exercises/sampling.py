"""Checker for chapter 9's exercise: temperature-scaled task sampling, against ``hft_lessons.multitask``."""

from __future__ import annotations

from collections.abc import Callable

from ..multitask import sampling_probabilities
from .base import attempt, verdict

# (task sizes, temperature): the full splits, T = 1 (proportional), the chapter's capped features, two tasks
# far apart, and T < 1 (sharpens towards the largest task)
CASES = [([67349, 14041, 4961], 2.0), ([67349, 14041, 4961], 1.0), ([1500, 1000, 447], 5.0),
         ([10, 1000], 3.0), ([5, 5, 5, 20], 0.5)]


def _temperature_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn(sizes, T)`` and ``sampling_probabilities(sizes, "temperature", T)``."""
    for sizes, T in CASES:
        ref = sampling_probabilities(sizes, "temperature", T)
        out, problem = attempt(fn, list(sizes), T)
        where = f"sizes {sizes}, T = {T:g}"
        if problem == "not implemented yet":
            return problem
        if problem is not None:
            return f"{where}: {problem}"
        if out is None:
            return f"{where}: returned None; return one probability per task"
        try:
            mine = [float(p) for p in out]
        except (TypeError, ValueError):
            return f"{where}: returned {type(out).__name__}; return a list of floats, one per task"
        if len(mine) != len(sizes):
            return f"{where}: got {len(mine)} probabilities, expected one per task ({len(sizes)})"
        total = sum(mine)
        if abs(total - 1) > atol:
            return f"{where}: the probabilities sum to {total:.4g}, not 1 (divide by the sum of the weights)"
        d = max(abs(m - r) for m, r in zip(mine, ref, strict=True))
        if d > atol:
            small = sizes.index(min(sizes))
            hint = (" (the smallest task gets less than it should: look at the exponent)"
                    if mine[small] < ref[small] else "")
            return f"{where}: p differs from the reference by up to {d:.1e}{hint}"
    return None


def check_temperature_sampling(fn: Callable, atol: float = 1e-9) -> bool:
    """Check ``fn(sizes, T) -> [p_1, ..., p_K]`` against ``sampling_probabilities(sizes, "temperature", T)``.
    """
    return verdict(_temperature_problem(fn, atol))
