"""Checker for chapter 7's exercise: UniPELT's gated LoRA, against ``delta.GatedLoraLinear``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..delta import GatedLoraLinear
from .base import attempt, close_to, verdict


def _reference(seed: int, d_in: int, d_out: int, r: int, alpha: float) -> GatedLoraLinear:
    """A GatedLoraLinear with every tensor random (B too: at init B = 0 would hide a missing update)."""
    g = torch.Generator().manual_seed(seed)
    layer = GatedLoraLinear(nn.Linear(d_in, d_out), r, alpha)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return layer.eval()


def _tensors(layer: GatedLoraLinear) -> tuple[torch.Tensor, ...]:
    """The learner's arguments after ``x``: W0, b0, A, B, the gate's w and b, alpha/r (copies)."""
    parts = (layer.base.weight, layer.base.bias, layer.lora_A.weight, layer.lora_B.weight,
             layer.gate.linear.weight, layer.gate.linear.bias)
    return (*(p.detach().clone() for p in parts), layer.scaling)


def _hint(mine: torch.Tensor, layer: GatedLoraLinear, x: torch.Tensor, atol: float) -> str:
    """Name the likely bug by comparing with the usual wrong answers (the right one is never printed)."""
    with torch.no_grad():
        frozen = layer.base(x)
        update = layer.lora_B(layer.lora_A(x)) * layer.scaling
        gate = layer.gate(x)
        wrong = {
            "the LoRA update is not gated: multiply it by sigmoid(x·w + b), one value per token":
                frozen + update,
            "the gate multiplies the frozen projection too: gate only the LoRA update":
                gate * (frozen + update),
            "the gate is the sigmoid of x·w + b, not x·w + b itself":
                frozen + layer.gate.linear(x) * update,
            "the LoRA update lacks the alpha/r scaling": frozen + gate * update / layer.scaling,
            "the gate should be one value per token (computed from that token's x), not a mean over tokens":
                frozen + gate.mean(dim=-2, keepdim=True) * update,
        }
    for hint, value in wrong.items():
        if value.shape == mine.shape and (mine.detach().float() - value).abs().max().item() <= atol:
            return f"; {hint}"
    return "; check the frozen part W0·x + b0 first, then the low-rank update B·A·x, then the gate"


def _gated_lora_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn`` and GatedLoraLinear on two layers and input shapes; None if nothing."""
    cases = [(0, 16, 12, 4, 8.0, (5, 16)), (1, 24, 24, 2, 16.0, (3, 7, 24))]
    for seed, d_in, d_out, r, alpha, shape in cases:
        layer = _reference(seed, d_in, d_out, r, alpha)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed))
        with torch.no_grad():
            ref = layer(x)
        mine, problem = attempt(fn, x.clone(), *_tensors(layer))
        if problem:
            return problem
        if mine is None:
            return "your function returned None; return y"
        where = f"input of shape {tuple(shape)}"
        problem = close_to(f"y for an {where}", mine, ref, atol)
        if problem is not None:
            return problem + (_hint(mine, layer, x, atol) if "differs" in problem else "")
    return None


def check_gated_lora(fn: Callable, atol: float = 1e-4) -> bool:
    """Check ``fn(x, W0, b0, A, B, w_gate, b_gate, scaling) -> y`` against ``delta.GatedLoraLinear``."""
    return verdict(_gated_lora_problem(fn, atol))
