"""Checker for chapter 4's exercise: SGD with momentum, against ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .base import verdict


def _momentum_problem(fn: Callable, lr: float, momentum: float, atol: float) -> str | None:
    """What differs between ``fn`` and ``torch.optim.SGD(momentum=...)`` over two steps; None if nothing."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, 10, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    W, b = torch.randn(3, 10, generator=g) * 0.1, torch.randn(3, generator=g) * 0.1
    layer = nn.Linear(10, 3)
    with torch.no_grad():
        layer.weight.copy_(W)
        layer.bias.copy_(b)
    opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=momentum)
    buffers = None
    for step in (1, 2):
        opt.zero_grad()
        F.cross_entropy(layer(X), y).backward()
        opt.step()
        try:
            out = fn(W.clone(), b.clone(), X.clone(), y.clone(), lr, momentum, buffers)
        except NotImplementedError:
            return "not implemented yet"
        except Exception as error:  # the learner's bug is reported, not raised
            return f"step {step} raised {type(error).__name__}: {error}"
        if out is None:
            return f"step {step} returned None; return the new W, b and the buffers"
        if not isinstance(out, tuple | list) or len(out) != 3:
            return f"step {step} returned {type(out).__name__}; return three things: W, b and the buffers"
        W, b, buffers = out
        for name, mine, ref in (("W", W, layer.weight), ("b", b, layer.bias)):
            if not torch.is_tensor(mine) or mine.shape != ref.shape:
                shape = tuple(mine.shape) if torch.is_tensor(mine) else type(mine).__name__
                return f"step {step}: {name} should be a tensor of shape {tuple(ref.shape)}, got {shape}"
            d = (mine.detach() - ref.detach()).abs().max().item()
            if not d <= atol:
                hint = " (step 1 matched: look at what carries over between steps)" if step == 2 else ""
                return (f"step {step}: {name} differs from torch.optim.SGD(momentum={momentum}) "
                        f"by up to {d:.1e}{hint}")
    return None


def check_sgd_momentum(fn: Callable, lr: float = 0.5, momentum: float = 0.9, atol: float = 1e-6) -> bool:
    """Check ``fn(W, b, X, y, lr, momentum, buffers) -> (W, b, buffers)`` against SGD with momentum, 2 steps.
    """
    return verdict(_momentum_problem(fn, lr, momentum, atol))
