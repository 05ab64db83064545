"""BitFit: train only the backbone's bias terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from .arch import Architecture
from .base import DeltaConfig, DeltaModule, register

__all__ = ["BitFitConfig"]


@register
@dataclass
class BitFitConfig(DeltaConfig):
    """Every bias of the backbone (projections, LayerNorms, pooler) trains; no new parameters."""

    method: ClassVar[str] = "bitfit"

    def attach(self, backbone: nn.Module, arch: Architecture) -> None:
        """Nothing to insert: BitFit only changes which parameters train."""

    def parameters_in(self, backbone: nn.Module) -> dict[str, nn.Parameter]:
        """The backbone's own biases (not those of modules other methods added)."""
        added = {
            id(p) for m in backbone.modules() if isinstance(m, DeltaModule) for _, p in m.own_parameters()
        }
        return {
            name: p
            for name, p in backbone.named_parameters()
            if name.rpartition(".")[2] == "bias" and id(p) not in added
        }
