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


def train_steps(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], steps: int, lr: float
) -> set[str]:
    """Train the trainable parameters a few AdamW steps on 3 labels; return the names of those that
    changed."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    labels = torch.tensor([0, 1, 2])
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(*batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
