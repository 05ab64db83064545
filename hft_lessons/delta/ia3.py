"""(IA)³: learned vectors that rescale keys, values and the FFN intermediate; ones at init."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .arch import Architecture, as_roles
from .base import DeltaConfig, LinearWrapper, register, wrap_role

__all__ = ["IA3Config", "IA3Linear"]


@register
@dataclass
class IA3Config(DeltaConfig):
    """Rescale the outputs of ``target_modules``; for ``feedforward_modules`` rescale the input instead."""

    target_modules: tuple[str, ...] = ("key", "value", "ffn_down")
    feedforward_modules: tuple[str, ...] = ("ffn_down",)

    method: ClassVar[str] = "ia3"
    mergeable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.target_modules = as_roles(self.target_modules)
        self.feedforward_modules = as_roles(self.feedforward_modules)
        stray = [m for m in self.feedforward_modules if m not in self.target_modules]
        if stray:
            raise ValueError(
                f"IA3Config.feedforward_modules {stray} must also be in target_modules "
                f"{list(self.target_modules)}"
            )

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Wrap every target projection in an :class:`IA3Linear`."""
        for role in self.target_modules:
            feedforward = role in self.feedforward_modules
            wrap_role(backbone, arch, role, lambda m, ff=feedforward: IA3Linear(m, ff))


class IA3Linear(LinearWrapper):
    """``base(x) ⊙ l`` (attention), or ``base(x ⊙ l)`` (feed-forward): peft's (IA)³ Linear."""

    method: ClassVar[str] = "ia3"
    mergeable: ClassVar[bool] = True

    def __init__(self, base: nn.Module, feedforward: bool = False):
        super().__init__(base)
        self.feedforward = feedforward
        size = self.in_features if feedforward else self.out_features
        self.ia3_scale = nn.Parameter(torch.ones(size, **self.factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the input (feed-forward) or the output (attention) feature-wise."""
        if self.feedforward:
            return self.base(x * self.ia3_scale)
        return self.base(x) * self.ia3_scale

    @torch.no_grad()
    def merge_into(self, linear: nn.Linear) -> None:
        """W ← W·diag(l) (feed-forward) or diag(l)·W, b ← l ⊙ b."""
        if self.feedforward:
            linear.weight *= self.ia3_scale[None, :]
            return
        linear.weight *= self.ia3_scale[:, None]
        if linear.bias is not None:
            linear.bias *= self.ia3_scale

    @torch.no_grad()
    def unmerge_from(self, linear: nn.Linear) -> None:
        """Divide the scaling back out."""
        if self.feedforward:
            linear.weight /= self.ia3_scale[None, :]
            return
        linear.weight /= self.ia3_scale[:, None]
        if linear.bias is not None:
            linear.bias /= self.ia3_scale
