"""Shared by the delta tests: a minimal task model (the tiny BertModel fixture is in conftest.py)."""

import torch
from torch import nn


class TaskModel(nn.Module):
    """A minimal task model: a backbone and a linear head on the first token."""

    def __init__(self, backbone: nn.Module, hidden: int, labels: int = 3):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden, labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        return self.head(hidden[:, 0])
