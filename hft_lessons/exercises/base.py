"""What every exercise checker shares: one printed line, ``right`` or ``wrong: <what differs>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def verdict(problem: str | None) -> bool:
    """Print ``right`` when there is no problem, else ``wrong: <problem>``; return whether it was right."""
    print("right" if problem is None else f"wrong: {problem}")
    return problem is None


def attempt(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """Call the learner's ``fn``; return (its result, None), or (None, the problem) if it raised."""
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, "not implemented yet"
    except Exception as error:  # the learner's bug is reported in one line, not raised
        return None, f"raised {type(error).__name__}: {error}"


def close_to(name: str, mine: Any, ref: torch.Tensor, atol: float) -> str | None:
    """None if ``mine`` is a tensor of ``ref``'s shape within ``atol``; else what differs (never ``ref``)."""
    if not torch.is_tensor(mine):
        return f"{name} should be a tensor, got {type(mine).__name__}"
    if mine.shape != ref.shape:
        return f"{name} should have shape {tuple(ref.shape)}, got {tuple(mine.shape)}"
    d = (mine.detach().float() - ref.detach().float()).abs().max().item()
    return None if d <= atol else f"{name} differs from the reference by up to {d:.1e} (allowed {atol:.0e})"
