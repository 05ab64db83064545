"""Training batches of similar length, in an order that depends only on (seed, epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["LengthGroupedBatchSampler"]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches of similar length: shuffle, sort within mega-batches, shuffle the batches.

    Padding to the longest example in a batch then wastes little compute. The order depends only on
    (seed, epoch), so a resumed run sees exactly the batches the uninterrupted one saw.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, group: bool = True,
                 mega: int = 50) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group, self.mega = group, mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order."""
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        if not self.group:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        size = self.batch_size * self.mega
        out: list[list[int]] = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            out += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        perm = torch.randperm(len(out), generator=g).tolist()
        return [out[i] for i in perm]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)
