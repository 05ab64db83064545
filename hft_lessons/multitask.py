"""Multi-task joint training: one shared backbone, one head per task, single-task batches mixed by a strategy.

``MultiTask(["sst2", "conll2003", "squad"], sampling="temperature")`` implements the
:class:`~.tasks.base.Task` interface, so ``training.train`` runs it unchanged: its features are the
per-task features side by side (:class:`MultiTaskDataset`, every row tagged with an integer ``task``), its
batch sampler yields batches of one task each in an order set by the strategy, and its collator, loss and
evaluation dispatch to the task a batch belongs to. Delta modules (LoRA, adapters, ...) are shared by all
tasks; only the heads are per task.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase

from .evaluation import evaluate
from .profiles import check_task_names
from .sampler import LengthGroupedBatchSampler
from .tasks import get_task
from .tasks.base import Task, TaskModel, encode

__all__ = [
    "SAMPLING_STRATEGIES",
    "sampling_probabilities",
    "MultiTaskModel",
    "MultiTaskDataset",
    "MultiTaskBatchSampler",
    "MultiTaskCollator",
    "MultiTask",
]

SAMPLING_STRATEGIES = ("proportional", "temperature", "round_robin")


def _check_strategy(strategy: str, temperature: float) -> None:
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; allowed: {', '.join(SAMPLING_STRATEGIES)}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def sampling_probabilities(sizes: Sequence[int], strategy: str = "proportional",
                           temperature: float = 2.0) -> list[float]:
    """How often each task is trained on: p_i ∝ n_i, ∝ n_i^(1/T), or uniform (round-robin)."""
    _check_strategy(strategy, temperature)
    if not sizes or any(isinstance(n, bool) or n <= 0 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of positive example counts, got {list(sizes)}")
    if strategy == "round_robin":
        weights = [1.0] * len(sizes)
    elif strategy == "temperature":
        weights = [float(n) ** (1.0 / temperature) for n in sizes]
    else:
        weights = [float(n) for n in sizes]
    total = sum(weights)
    return [w / total for w in weights]


def _largest_remainder(probabilities: Sequence[float], total: int) -> list[int]:
    """Integer counts summing to ``total``, as close as possible to ``p_i · total`` (ties: earlier task)."""
    raw = [p * total for p in probabilities]
    counts = [math.floor(x) for x in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


class MultiTaskModel(nn.Module):
    """A shared backbone and one head per task; ``forward(..., task=i)`` returns task i's head output.

    Per-task delta modules are not supported: delta methods applied to the model (``delta.apply`` sees
    ``.backbone`` and ``.head``, a ModuleDict of the heads) are shared by every task.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("MultiTaskModel needs at least one task head")
        self.backbone = backbone
        self.head = nn.ModuleDict(dict(heads))
        self.task_names: tuple[str, ...] = tuple(heads)

    @property
    def heads(self) -> nn.ModuleDict:
        """The task heads by task name."""
        return self.head

    def task_name(self, task: int | str | torch.Tensor | None) -> str:
        """The task name for a task id, name, or a batch's ``task`` tensor (all one task)."""
        if task is None:
            if len(self.task_names) == 1:
                return self.task_names[0]
            raise ValueError(f"say which task to run: task= one of {', '.join(self.task_names)}")
        if isinstance(task, torch.Tensor):
            task = int(task.reshape(-1)[0])
        if isinstance(task, str):
            if task not in self.head:
                raise ValueError(f"unknown task {task!r}; this model has heads for: "
                                 f"{', '.join(self.task_names)}")
            return task
        if not 0 <= task < len(self.task_names):
            raise ValueError(f"task id {task} out of range; this model has {len(self.task_names)} heads")
        return self.task_names[task]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, task: int | str | torch.Tensor | None = None,
                **_: Any) -> Any:
        """The chosen task's head output for a batch; extra batch keys (labels, positions) are ignored."""
        hidden = encode(self.backbone, input_ids, attention_mask, token_type_ids)
        return self.head[self.task_name(task)](hidden, attention_mask)

    def for_task(self, task: int | str) -> TaskModel:
        """A single-task view (a TaskModel sharing this backbone and that task's head)."""
        name = self.task_name(task)
        return TaskModel(self.backbone, self.head[name], name)


class MultiTaskDataset(torch.utils.data.Dataset):
    """Per-task datasets side by side: row i belongs to one task, and carries its integer ``task`` id."""

    def __init__(self, parts: Mapping[str, Dataset]) -> None:
        self.parts: dict[str, Dataset] = dict(parts)
        self.names = tuple(self.parts)
        self.offsets = [0]
        for part in self.parts.values():
            self.offsets.append(self.offsets[-1] + len(part))

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``(task id, row within that task)`` of a global row index."""
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        task = bisect.bisect_right(self.offsets, index) - 1
        return task, index - self.offsets[task]

    def __getitem__(self, index: int) -> dict[str, Any]:
        task, row = self.locate(int(index))
        return {**self.parts[self.names[task]][row], "task": task}

    def task_range(self, task: int | str) -> range:
        """The global row indices of one task."""
        i = self.names.index(task) if isinstance(task, str) else task
        return range(self.offsets[i], self.offsets[i + 1])


class MultiTaskBatchSampler(Sampler[list[int]]):
    """Single-task batches (length-grouped within a task), ordered by a sampling strategy.

    An epoch has as many batches as the tasks have together. ``proportional``: every batch of every task
    once, in a shuffled order. ``temperature``: each task gets a share ∝ n_i^(1/T) of the epoch's batches, in
    a shuffled order; a task that needs more batches than it has starts again on a fresh shuffle, a task that
    needs fewer sees a random part of its data. ``round_robin``: equal shares, tasks taking turns
    A, B, C, A, B, C, ... The order depends only on (seed, epoch).
    """

    def __init__(self, lengths: Sequence[Sequence[int]], batch_size: int, strategy: str = "proportional",
                 temperature: float = 2.0, seed: int = 0, group_by_length: bool = True,
                 offsets: Sequence[int] | None = None) -> None:
        _check_strategy(strategy, temperature)
        if not lengths or any(len(x) == 0 for x in lengths):
            raise ValueError("every task needs at least one training example")
        self.strategy, self.temperature, self.seed, self.batch_size = strategy, temperature, seed, batch_size
        self.offsets = list(offsets) if offsets is not None else [0]
        if offsets is None:
            for x in lengths:
                self.offsets.append(self.offsets[-1] + len(x))
        self.samplers = [LengthGroupedBatchSampler(list(x), batch_size, seed * 100 + i, group_by_length)
                         for i, x in enumerate(lengths)]
        self.sizes = [len(x) for x in lengths]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(s) for s in self.samplers)

    def counts(self) -> list[int]:
        """Batches of each task in one epoch."""
        if self.strategy == "proportional":
            return [len(s) for s in self.samplers]
        probabilities = sampling_probabilities(self.sizes, self.strategy, self.temperature)
        return _largest_remainder(probabilities, len(self))

    def _task_batches(self, task: int, count: int) -> list[list[int]]:
        """``count`` batches of one task (global indices), cycling through fresh shuffles when needed."""
        sampler, out, rounds = self.samplers[task], [], 0
        while len(out) < count:
            sampler.set_epoch(self.epoch * 1000 + rounds)  # a new shuffle per pass, fixed by (seed, epoch)
            out += sampler.batches()
            rounds += 1
        return [[self.offsets[task] + i for i in b] for b in out[:count]]

    def task_order(self) -> list[int]:
        """The task of each batch of the current epoch."""
        counts = self.counts()
        if self.strategy == "round_robin":
            order, left = [], list(counts)
            while any(left):
                for t in range(len(left)):
                    if left[t]:
                        order.append(t)
                        left[t] -= 1
            return order
        order = [t for t, c in enumerate(counts) for _ in range(c)]
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch + 7)
        return [order[i] for i in torch.randperm(len(order), generator=g).tolist()]

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order (global row indices)."""
        order = self.task_order()
        queues = [iter(self._task_batches(t, order.count(t))) for t in range(len(self.samplers))]
        return [next(queues[t]) for t in order]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())


class MultiTaskCollator:
    """Collate a single-task batch with that task's collator and add ``task`` (one id per row)."""

    def __init__(self,
                 collators: Sequence[Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]]) -> None:
        self.collators = list(collators)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad with the batch's own task's rules (QA offsets stay out), then attach the task ids."""
        tasks = {int(r["task"]) for r in rows}
        if len(tasks) != 1:
            raise ValueError(f"a multi-task batch must hold one task, got tasks {sorted(tasks)}")
        task = tasks.pop()
        batch = self.collators[task](rows)
        batch["task"] = torch.full((len(rows),), task, dtype=torch.long)
        return batch


class MultiTask(Task):
    """Several tasks trained jointly on one backbone; ``metric`` is ``average`` (main metrics on 0–1)."""

    def __init__(self, tasks: Sequence[str | Task], sampling: str = "proportional",
                 temperature: float = 2.0) -> None:
        if isinstance(tasks, str):
            tasks = tasks.split(",")
        tasks = [t for t in tasks if not isinstance(t, str) or t.strip()]
        check_task_names([t if isinstance(t, str) else t.name for t in tasks], known=None)
        _check_strategy(sampling, temperature)
        self.tasks: list[Task] = [get_task(t.strip()) if isinstance(t, str) else t for t in tasks]
        self.names = tuple(t.name for t in self.tasks)
        self.sampling, self.temperature = sampling, float(temperature)
        self.name = "+".join(self.names)
        self.metric = "average"
        self.batch_keys = tuple(dict.fromkeys(k for t in self.tasks for k in t.batch_keys)) + ("task",)

    def task(self, name: str) -> Task:
        """The member task called ``name``."""
        if name not in self.names:
            raise ValueError(f"unknown task {name!r}; this multi-task run has: {', '.join(self.names)}")
        return self.tasks[self.names.index(name)]

    def probabilities(self, features: MultiTaskDataset) -> dict[str, float]:
        """Each task's sampling probability for these training features."""
        sizes = [len(features.parts[n]) for n in self.names]
        probabilities = sampling_probabilities(sizes, self.sampling, self.temperature)
        return dict(zip(self.names, probabilities, strict=True))

    def tokenize(self, split: Mapping[str, Dataset], tokenizer: PreTrainedTokenizerBase,  # type: ignore[override]
                 max_length: int | Mapping[str, int], stride: int | Mapping[str, int] = 0,
                 train: bool = True) -> MultiTaskDataset:
        """Tokenize each task's raw split (``split[name]``), optionally with per-task lengths and strides."""
        missing = [n for n in self.names if n not in split]
        if missing:
            raise ValueError(f"no data for task(s) {', '.join(missing)}; "
                             f"give a split per task: {', '.join(self.names)}")
        parts = {}
        for t in self.tasks:
            length = max_length[t.name] if isinstance(max_length, Mapping) else max_length
            step = stride.get(t.name, 0) if isinstance(stride, Mapping) else stride
            parts[t.name] = t.tokenize(split[t.name], tokenizer, length, step, train)
        return MultiTaskDataset(parts)

    def make_head(self, hidden_size: int, dropout: float = 0.1) -> nn.Module:
        """One head per task, in a ModuleDict."""
        return nn.ModuleDict({t.name: t.make_head(hidden_size, dropout) for t in self.tasks})

    def build_model(self, backbone: nn.Module, dropout: float = 0.1) -> MultiTaskModel:  # type: ignore[override]
        """A MultiTaskModel: ``backbone`` shared, a fresh head per task."""
        return MultiTaskModel(backbone, self.make_head(backbone.config.hidden_size, dropout))

    def _features(self, features: Any) -> MultiTaskDataset:
        if not isinstance(features, MultiTaskDataset) or features.names != self.names:
            raise ValueError(f"expected MultiTask features for {', '.join(self.names)}; "
                             "build them with MultiTask.tokenize or MultiTaskDataset")
        return features

    def batch_sampler(self, features: MultiTaskDataset, batch_size: int, seed: int,  # type: ignore[override]
                      group_by_length: bool = True) -> MultiTaskBatchSampler:
        """Single-task batches in the order of the sampling strategy."""
        features = self._features(features)
        lengths = [[len(x) for x in features.parts[n]["input_ids"]] for n in self.names]
        return MultiTaskBatchSampler(lengths, batch_size, self.sampling, self.temperature, seed,
                                     group_by_length,
                                     features.offsets)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> MultiTaskCollator:
        """Each task's own collator, chosen by the batch's task."""
        return MultiTaskCollator([t.collator(tokenizer) for t in self.tasks])

    def _of(self, batch: Mapping[str, torch.Tensor]) -> Task:
        return self.tasks[int(batch["task"].reshape(-1)[0])]

    def loss(self, logits: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of the task this batch belongs to."""
        return self._of(batch).loss(logits, batch)

    def predict(self, logits: Any, batch: dict[str, torch.Tensor]) -> Any:
        """The predictions of the task this batch belongs to."""
        return self._of(batch).predict(logits, batch)

    def printed_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """What each task prints, under its name, and the ``average``."""
        shown: dict[str, float] = {}
        for t in self.tasks:
            own = {k[len(t.name) + 1:]: v for k, v in metrics.items() if k.startswith(f"{t.name}_")}
            shown.update({f"{t.name}_{k}": v for k, v in t.printed_metrics(own).items()})
        return {**shown, **{k: v for k, v in metrics.items() if k == "average"}}

    def compute_metrics(self, predictions: list[Any], features: Any, raw: Any) -> dict[str, float]:
        """Not used: :meth:`evaluate` scores each task on its own split."""
        raise NotImplementedError("MultiTask scores each task separately; call MultiTask.evaluate")

    def evaluate(self, model: nn.Module, features: MultiTaskDataset, raw: Mapping[str, Dataset],  # type: ignore[override]
                 tokenizer: PreTrainedTokenizerBase, batch_size: int = 128,
                 device: torch.device | str | None = None) -> dict[str, float]:
        """Per-task metrics under the task's name (``sst2_accuracy``, ``squad_f1``, ...) and ``average``."""
        features = self._features(features)
        if not isinstance(model, MultiTaskModel):
            raise ValueError(f"MultiTask.evaluate needs a MultiTaskModel, got {type(model).__name__}")
        metrics: dict[str, float] = {}
        main: list[float] = []
        for t in self.tasks:
            scores = evaluate(model.for_task(t.name), t, features.parts[t.name], raw[t.name], tokenizer,
                              batch_size, device)
            metrics.update({f"{t.name}_{k}": v for k, v in scores.items()})
            main.append(scores[t.metric] / t.metric_scale)
        metrics["average"] = sum(main) / len(main)
        return metrics
