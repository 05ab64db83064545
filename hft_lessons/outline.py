"""The course outline's section 5.1 model: a pretrained encoder, one adapter layer and a classifier.

The outline's *adapter layer* (one Linear and a ReLU on the pooled vector) is not the bottleneck adapter of
Houlsby et al. (``hft_lessons.delta.AdapterConfig``), which sits inside every encoder layer.

The outline's code puts a ReLU on the logits; chapter 5 shows why that hurts (negative logits are clipped to
0, their gradient dies, predictions get stuck) and fixes it with ``logit_activation=False``.
"""

from __future__ import annotations

import torch
from torch import nn

from .tasks.sequence_classification import pool

__all__ = ["AdapterLayer", "OutlineAdapterLayerModel", "POOLINGS"]

POOLINGS = ("pooler", "mean", "cls")


class AdapterLayer(nn.Module):
    """The outline's adapter layer: h = σ(hW + b), one Linear followed by a ReLU."""

    def __init__(self, input_size: int, adapter_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, adapter_size)
        self.activation = nn.ReLU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """σ(hW + b), shape [..., adapter_size]."""
        return self.activation(self.linear(h))


class OutlineAdapterLayerModel(nn.Module):
    """backbone → pooled output → AdapterLayer → classifier (→ ReLU on the logits, as in the outline)."""

    def __init__(
        self,
        backbone: nn.Module,
        adapter_size: int = 64,
        num_labels: int = 2,
        logit_activation: bool = True,
        freeze_backbone: bool = True,
        pooling: str = "pooler",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; allowed: {', '.join(POOLINGS)}")
        self.backbone, self.pooling = backbone, pooling
        hidden = backbone.config.hidden_size
        self.adapter = AdapterLayer(hidden, adapter_size)
        self.classifier = nn.Linear(adapter_size, num_labels)
        # the outline's ReLU on the logits; the fixed model has none (cross-entropy wants raw logits)
        self.logit_activation: nn.Module = nn.ReLU() if logit_activation else nn.Identity()
        if freeze_backbone:
            backbone.requires_grad_(False)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's pooled sentence vector [batch, hidden]."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            return out.pooler_output
        return pool(out.last_hidden_state, attention_mask, self.pooling)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from a pooled vector: adapter, classifier, then the (optional) logit activation."""
        return self.logit_activation(self.classifier(self.adapter(pooled)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        """Class logits [batch, num_labels]."""
        return self.classify(self.pooled(input_ids, attention_mask, token_type_ids))
