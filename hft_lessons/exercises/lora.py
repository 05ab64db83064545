"""Checker for chapter 6's exercise: merging a LoRA update into its weight, against ``peft``'s
``merge_and_unload``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import attempt, close_to, verdict


class _OneLinear(nn.Module):
    """A model holding one projection named like BERT's query, for peft to wrap."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.query = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projection."""
        return self.query(x)


def _peft_reference(d_in: int, d_out: int, r: int, alpha: float, seed: int) -> tuple[dict, torch.Tensor]:
    """peft's LoRA on one Linear with seeded non-zero A and B: the weights, and peft's merged weight."""
    import peft  # the reference; imported here so that importing the checkers stays light

    torch.manual_seed(seed)
    model = peft.get_peft_model(_OneLinear(d_in, d_out),
                                peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["query"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    layer = model.base_model.model.query
    weights = {"weight": layer.base_layer.weight.detach().clone(),
               "lora_A": layer.lora_A["default"].weight.detach().clone(),
               "lora_B": layer.lora_B["default"].weight.detach().clone()}
    merged = model.merge_and_unload().query.weight.detach().clone()
    return weights, merged


def _merge_problem(fn: Callable, atol: float) -> str | None:
    """What differs between ``fn`` and peft's merged weight, for two (r, alpha) settings; None if nothing."""
    for r, alpha, seed in ((4, 8.0, 0), (2, 16.0, 1)):
        weights, want = _peft_reference(d_in=6, d_out=10, r=r, alpha=alpha, seed=seed)
        mine, problem = attempt(fn, weights["weight"].clone(), weights["lora_A"].clone(),
                                weights["lora_B"].clone(), alpha)
        if problem is not None:
            return problem
        if mine is None:
            return "the function returned None; return the merged weight"
        where = f"with r = {r}, alpha = {alpha:g}"
        problem = close_to(f"the merged weight {where}", mine, want, atol)
        if problem is None:
            continue
        if not torch.is_tensor(mine) or mine.shape != want.shape:
            return problem + " (ΔW must have the base weight's shape [out, in]: which product gives that?)"
        mine_delta, want_delta = (mine - weights["weight"]).flatten(), (want - weights["weight"]).flatten()
        if mine_delta.abs().max() < atol:
            return problem + " (the weight did not change: ΔW was not added)"
        ratio = (mine_delta @ want_delta) / (want_delta @ want_delta)
        if torch.allclose(mine_delta, ratio * want_delta, atol=atol):
            return problem + " (ΔW points the right way but has the wrong size: look at the scaling)"
        return problem
    return None


def check_lora_merge(fn: Callable, atol: float = 1e-5) -> bool:
    """Check ``fn(weight, lora_A, lora_B, alpha) -> merged weight`` against peft's ``merge_and_unload``."""
    return verdict(_merge_problem(fn, atol))
