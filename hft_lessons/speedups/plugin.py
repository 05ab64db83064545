"""The CPU speed-ups as one trainer plug-in: ``train(..., config=TrainConfig(fast_cpu=True))`` uses it."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from accelerate import Accelerator
from datasets import Dataset
from torch import nn

from .kernels import (
    CompactEmbedding,
    clip_into_optimizer,
    compact_embeddings,
    cpu_attention,
    follow_optimizer,
    fused_lora,
    fuses_clipping,
    onednn_linear,
    packed_layers,
    patched_dropout,
)

__all__ = ["FastCpu"]


class FastCpu:
    """A :class:`~hft_lessons.training.TrainingPlugin`: compact embeddings, fast layers, clipping in AdamW."""

    def __init__(self) -> None:
        self.compact: CompactEmbedding | None = None
        self.fold_clip = False

    def prepare(self, model: nn.Module, train_features: Dataset, cfg: Any,
                stack: contextlib.ExitStack) -> None:
        """Train only the reachable rows of the word-embedding table (not with checkpoints, which store the
        model as it is outside training)."""
        if not (cfg.checkpoint_every or cfg.resume):
            self.compact = stack.enter_context(compact_embeddings(model, train_features["input_ids"]))

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, accelerator: Accelerator,
               stack: contextlib.ExitStack) -> None:
        """Follow the optimizer's weight decay on the compact table; swap in the fast layers."""
        self.fold_clip = accelerator.mixed_precision == "no" and fuses_clipping(optimizer)
        if self.compact is not None:
            stack.enter_context(follow_optimizer(self.compact, optimizer))
        for patch in (patched_dropout, fused_lora, cpu_attention, packed_layers, onednn_linear):
            stack.enter_context(patch(model))

    def clip(self, optimizer: torch.optim.Optimizer, parameters: Any, max_norm: float) -> bool:
        """Clip inside the fused AdamW step, which divides by its grad_scale anyway."""
        if self.fold_clip:
            clip_into_optimizer(optimizer, parameters, max_norm)
        return self.fold_clip

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the clipping scale, so the next step does not reuse it."""
        if self.fold_clip:
            optimizer.grad_scale = None  # type: ignore[attr-defined]
