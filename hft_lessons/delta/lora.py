"""LoRA: y = W x + b + (α/r)·B A x, with B = 0 at init so the model starts unchanged."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .arch import Architecture, as_roles
from .base import DeltaConfig, LinearWrapper, check_positive, register, wrap_role

__all__ = ["LoraConfig", "LoraLinear"]


@register
@dataclass
class LoraConfig(DeltaConfig):
    """Low-rank updates ΔW = (alpha/r)·B·A on the ``target_modules`` projections of every layer."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("query", "value")

    method: ClassVar[str] = "lora"
    mergeable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.target_modules = as_roles(self.target_modules)
        check_positive("LoraConfig.r", self.r)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Wrap every target projection in a :class:`LoraLinear`."""
        for role in self.target_modules:
            wrap_role(backbone, arch, role, lambda m: LoraLinear(m, self.r, self.alpha, self.dropout))


class LoraLinear(LinearWrapper):
    """``base(x) + lora_B(lora_A(dropout(x))) · alpha/r`` — peft's LoRA Linear, one adapter."""

    method: ClassVar[str] = "lora"
    mergeable: ClassVar[bool] = True

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__(base)
        self.scaling = alpha / r
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(self.in_features, r, bias=False, **self.factory)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, **self.factory)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as peft does
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen projection plus the scaled low-rank update."""
        return self.base(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (alpha/r)·B·A, shaped like the base weight [out, in]."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @torch.no_grad()
    def merge_into(self, linear: nn.Linear) -> None:
        """W ← W + ΔW."""
        linear.weight += self.delta_weight()

    @torch.no_grad()
    def unmerge_from(self, linear: nn.Linear) -> None:
        """W ← W − ΔW."""
        linear.weight -= self.delta_weight()
