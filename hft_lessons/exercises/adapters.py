"""Checker for chapter 5's exercise: a bottleneck adapter's forward, against ``hft_lessons.delta.Bottleneck``.

The reference is the course's own adapter (the one ``delta.AdapterConfig`` puts in every layer); chapter 5 has
already checked that it computes what the chapter's ``Bottleneck`` computes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import attempt, close_to, verdict


def _reference(d: int, m: int, seed: int, zero_up: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    """A ``delta.Bottleneck`` with seeded weights (``up`` non-zero unless ``zero_up``) and an input batch."""
    from ..delta import Bottleneck  # the course's adapter: the reference

    g = torch.Generator().manual_seed(seed)
    ref = Bottleneck(d, m)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if not (zero_up and name.startswith("up.")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return ref.eval(), torch.randn(2, 5, d, generator=g)


def _bottleneck_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn`` and ``delta.Bottleneck``, at init (up = 0) and trained; None if nothing."""
    for zero_up, when in ((True, "at initialisation (up = 0)"), (False, "with trained (non-zero) weights")):
        ref, h = _reference(d=12, m=4, seed=1 if zero_up else 2, zero_up=zero_up)
        args = [t.detach().clone() for t in (h, ref.down.weight, ref.down.bias, ref.up.weight, ref.up.bias)]
        mine, problem = attempt(fn, *args)
        if problem is not None:
            return problem
        if mine is None:
            return "the function returned None; return the adapter's output tensor"
        with torch.no_grad():
            want = ref(h)
            update = want - h
            no_act = h + ref.up(ref.down(h))
        problem = close_to(f"the output {when}", mine, want, atol)
        if problem is None or not torch.is_tensor(mine) or mine.shape != want.shape:
            if problem is not None:
                return problem
            continue
        if zero_up:
            hint = " (with up = 0 the adapter must be the identity: is the input added back?)"
        elif torch.allclose(mine, update, atol=atol):
            hint = " (you return only the bottleneck's update: the adapter adds it to its input h)"
        elif torch.allclose(mine, no_act, atol=atol):
            hint = " (it matches the adapter without its non-linearity: where does the ReLU go?)"
        else:
            hint = " (check the order: down-projection, ReLU, up-projection, then the residual)"
        return problem + hint
    return None


def check_bottleneck(fn: Callable, atol: float = 1e-5) -> bool:
    """Check ``fn(h, down_weight, down_bias, up_weight, up_bias) -> h'`` against ``delta.Bottleneck``."""
    return verdict(_bottleneck_problem(fn, atol))
