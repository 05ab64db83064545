"""Checker for chapter 11's exercise: a reliability (calibration) curve, against scikit-learn's
(installed with seqeval, which the course requires)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import attempt, verdict


def _cases() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(P(positive), gold, bins): an over-confident model, a calibrated one, few sentences with empty bins."""
    g = torch.Generator().manual_seed(0)
    p = torch.rand(400, generator=g, dtype=torch.float64)
    sharp = torch.sigmoid(6 * (p - 0.5))  # over-confident: most probabilities near 0 or 1
    gold_sharp = (torch.rand(400, generator=g, dtype=torch.float64) < 0.2 + 0.6 * p).long()
    gold_cal = (torch.rand(400, generator=g, dtype=torch.float64) < p).long()
    few = torch.tensor([0.05, 0.12, 0.31, 0.33, 0.62, 0.91, 0.97], dtype=torch.float64)  # empty bins
    return [(sharp, gold_sharp, 10), (p, gold_cal, 5), (few, torch.tensor([0, 0, 1, 0, 1, 1, 1]), 10)]


def _as_vector(values: object) -> torch.Tensor | None:
    """``values`` as a 1-D float64 tensor, or None if it is not a sequence of numbers."""
    try:
        return torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return None


def _calibration_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn`` and ``sklearn.calibration.calibration_curve(strategy="uniform")``."""
    from sklearn.calibration import calibration_curve  # imported here: only this checker needs it

    for k, (prob, gold, n_bins) in enumerate(_cases(), start=1):
        true_ref, pred_ref = calibration_curve(gold.numpy(), prob.numpy(), n_bins=n_bins)
        out, problem = attempt(fn, prob.clone(), gold.clone(), n_bins)
        where = f"case {k} ({len(prob)} sentences, {n_bins} bins)"
        if problem == "not implemented yet":
            return problem
        if problem is not None:
            return f"{where}: {problem}"
        if not isinstance(out, tuple | list) or len(out) != 2:
            return f"{where}: return two things, (fraction of positives, mean probability), got {out!r:.40}"
        mine = [_as_vector(v) for v in out]
        if mine[0] is None or mine[1] is None:
            return f"{where}: both results should be sequences of numbers"
        if len(mine[0]) != len(true_ref) or len(mine[1]) != len(pred_ref):
            return (f"{where}: expected {len(true_ref)} values (one per non-empty bin), "
                    f"got {len(mine[0])} and {len(mine[1])}")
        d_true = (mine[0] - torch.from_numpy(true_ref)).abs().max().item()
        d_pred = (mine[1] - torch.from_numpy(pred_ref)).abs().max().item()
        swapped = _as_vector(out[1]) is not None and torch.allclose(mine[1], torch.from_numpy(true_ref))
        if d_true > atol or d_pred > atol:
            if swapped:
                return f"{where}: the two results are swapped (first the fraction of positives)"
            name = "fraction of positives" if d_true > atol else "mean probability"
            return (f"{where}: the {name} per bin differs from scikit-learn's by up to "
                    f"{max(d_true, d_pred):.1e} (check which bin each probability falls in)")
    return None


def check_calibration_curve(fn: Callable, atol: float = 1e-9) -> bool:
    """Check ``fn(prob_positive, gold, n_bins) -> (fraction_positive, mean_prob)`` against scikit-learn's."""
    return verdict(_calibration_problem(fn, atol))
