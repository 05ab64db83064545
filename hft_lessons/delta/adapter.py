"""Bottleneck adapters: h + up(act(down(h))), up zero-initialised so the model starts unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers.activations import ACT2FN

from .arch import Architecture
from .base import DeltaConfig, LinearWrapper, check_positive, innermost_linear, register, wrap_role

__all__ = ["AdapterConfig", "Bottleneck", "AdapterLinear", "ADAPTER_PLACES", "ADAPTER_ACTIVATIONS"]

# where each variant inserts an adapter: after these projections, in every layer
ADAPTER_PLACES = {"houlsby": ("attention_output", "ffn_down"), "pfeiffer": ("ffn_down",)}
ADAPTER_ACTIVATIONS = ("relu", "gelu", "tanh", "swish", "silu")


@register
@dataclass
class AdapterConfig(DeltaConfig):
    """Houlsby (after attention and FFN) or Pfeiffer (after FFN) bottleneck adapters of size
    hidden/reduction."""

    variant: str = "houlsby"
    reduction_factor: float = 16.0
    bottleneck_size: int | None = None  # when given, overrides reduction_factor
    activation: str = "relu"

    method: ClassVar[str] = "adapter"

    def __post_init__(self) -> None:
        if self.variant not in ADAPTER_PLACES:
            raise ValueError(
                f"unknown adapter variant {self.variant!r}; allowed: {', '.join(ADAPTER_PLACES)}"
            )
        if self.activation not in ADAPTER_ACTIVATIONS:
            raise ValueError(
                f"unknown adapter activation {self.activation!r}; allowed: {', '.join(ADAPTER_ACTIVATIONS)}"
            )
        check_positive("AdapterConfig.reduction_factor", self.reduction_factor, integer=False)
        if self.bottleneck_size is not None:
            check_positive("AdapterConfig.bottleneck_size", self.bottleneck_size)

    def size_for(self, hidden_size: int) -> int:
        """The bottleneck width for a model of ``hidden_size``."""
        return self.bottleneck_size or max(1, int(hidden_size // self.reduction_factor))

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Wrap the variant's projections in :class:`AdapterLinear`."""
        for role in ADAPTER_PLACES[self.variant]:
            wrap_role(
                backbone,
                arch,
                role,
                lambda m: AdapterLinear(m, self.size_for(innermost_linear(m).out_features), self.activation),
            )


class Bottleneck(nn.Module):
    """h + up(act(down(h))); ``up`` starts at zero, so at init it is the identity."""

    def __init__(self, hidden_size: int, bottleneck_size: int, activation: str = "relu", **factory: object):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck_size, **factory)
        self.act = ACT2FN[activation]
        self.up = nn.Linear(bottleneck_size, hidden_size, **factory)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The residual bottleneck."""
        return h + self.up(self.act(self.down(h)))


class AdapterLinear(LinearWrapper):
    """A projection followed by a bottleneck adapter: ``adapter(base(x))``."""

    method: ClassVar[str] = "adapter"

    def __init__(self, base: nn.Module, bottleneck_size: int, activation: str = "relu"):
        super().__init__(base)
        self.adapter = Bottleneck(self.out_features, bottleneck_size, activation, **self.factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project, then adapt."""
        return self.adapter(self.base(x))
