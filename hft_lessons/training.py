"""The course's one training loop, on Hugging Face Accelerate: CPU, one GPU, or many under `accelerate launch`."""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import (
    PreTrainedTokenizerBase,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from . import checkpoint
from .cpu_speedups import (
    clip_into_optimizer,
    compact_embeddings,
    cpu_attention,
    follow_optimizer,
    fused_lora,
    fuses_clipping,
    onednn_linear,
    own_weights,
    packed_layers,
    patched_dropout,
)
from .runtime import cpu_requested, seed_everything, uses_cuda
from .tasks.base import Task

__all__ = ["TrainConfig", "TrainResult", "LengthGroupedBatchSampler", "PeakMemory", "train", "evaluate",
           "predict_rows", "SCHEDULES"]

SCHEDULES = ("linear", "cosine", "constant")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything that shapes a training run."""

    lr: float = 5e-5
    head_lr: float | None = None  # learning rate of the task head; None = lr
    layer_decay: float | None = None  # layer-wise lr decay: each layer below the top trains at decay x the one above
    epochs: int = 2
    batch_size: int = 32
    eval_batch_size: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    schedule: str = "linear"
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    group_by_length: bool = True
    early_stopping_patience: int | None = None
    checkpoint_every: int | None = None  # optimizer steps between checkpoints
    output_dir: str | None = None
    resume: bool = False
    seed: int = 0
    mixed_precision: str = "auto"
    log_every: int = 20
    progress: bool = True
    stop_after_steps: int | None = None  # stop early (tests simulate an interrupted run with it)
    fast_cpu: bool = False  # CPU speed-ups that change the random stream and rounding, not the maths (cpu_speedups)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"unknown mixed_precision {self.mixed_precision!r}; allowed: {', '.join(MIXED_PRECISION)}")
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1] or None, got {self.layer_decay}")
        if (self.checkpoint_every or self.resume) and not self.output_dir:
            raise ValueError("checkpointing and --resume need an output_dir")


@dataclass
class TrainResult:
    """What a run produced: final metrics, the history for plots, and its cost."""

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    peak_memory_mb: float = 0.0
    steps: int = 0
    stopped_early: bool = False
    processes: int = 1  # data-parallel processes that trained together


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches of similar length: shuffle, sort within mega-batches, shuffle the batches.

    Padding to the longest example in a batch then wastes little compute. The order depends only on
    (seed, epoch), so a resumed run sees exactly the batches the uninterrupted one saw.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, group: bool = True,
                 mega: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.group, self.mega = lengths, batch_size, seed, group, mega
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


def _force_cpu() -> bool:
    """True when Accelerate must be told to use the CPU: it was asked for, or several processes and no CUDA."""
    return cpu_requested() or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if uses_cuda():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def _layer_depth(name: str, num_layers: int) -> int:
    """How far below the top ``name`` sits: encoder layer k is ``num_layers - 1 - k``, the embeddings ``num_layers``."""
    if ".embeddings." in f".{name}":
        return num_layers
    match = _LAYER.search(name)
    return num_layers - 1 - int(match.group(1)) if match else 0  # the head and the pooler sit at the top


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    layers = [_LAYER.search(n) for n, _ in model.named_parameters()]
    num_layers = max((int(m.group(1)) + 1 for m in layers if m), default=0)
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith("head.") or ".head." in name or name.startswith("heads.")
        no_decay = p.ndim < 2 or "norm" in name.lower()
        depth = 0 if is_head or cfg.layer_decay is None else _layer_depth(name, num_layers)
        groups.setdefault((is_head, no_decay, depth), []).append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    scale = cfg.layer_decay or 1.0
    return [
        {"params": ps, "lr": ((cfg.head_lr or cfg.lr) if head else cfg.lr) * scale**depth,
         "weight_decay": 0.0 if no_decay else cfg.weight_decay}
        for (head, no_decay, depth), ps in groups.items()
    ]


class PeakMemory:
    """Peak memory of one run: CUDA's allocator peak, or on CPU the resident set sampled in a thread.

    The process-wide ``ru_maxrss`` never goes down, so it cannot tell two runs in one notebook apart;
    sampling the resident set while the run lasts can.
    """

    def __init__(self, device: torch.device, interval: float = 0.05) -> None:
        self.device, self.interval, self.peak = device, interval, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())

    @property
    def mb(self) -> float:
        """The peak in MiB."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return self.peak / 2**20


def _rss_bytes() -> int:
    """The process's resident set size now (Linux /proc; elsewhere the lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return rss if sys.platform == "darwin" else rss * 1024


def _adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one pass over all parameters per step) where torch has it."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


def _move(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_rows(model: nn.Module, task: Task, features: Dataset, tokenizer: PreTrainedTokenizerBase,
                 batch_size: int = 128,
                 device: torch.device | str | None = None, predict_fn: Any = None) -> list[Any]:
    """Per-example predictions (``task.predict``, or ``predict_fn(logits, batch)``) in the split's order."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    predict_fn = predict_fn or task.predict
    was_training = model.training
    model.eval()
    lengths = [len(x) for x in features["input_ids"]]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # sort by length: little padding
    collate = task.collator(tokenizer)
    preds: list[Any] = [None] * len(order)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = _move(collate([features[i] for i in idx]), device)
        out = predict_fn(model(**batch), batch)
        for j, i in enumerate(idx):  # scatter per-example predictions back to dataset order
            preds[i] = _row(out, j)
    model.train(was_training)
    return preds


def evaluate(model: nn.Module, task: Task, features: Dataset, raw: Dataset, tokenizer: PreTrainedTokenizerBase,
             batch_size: int = 128, device: torch.device | str | None = None) -> dict[str, float]:
    """Run ``model`` over an evaluation split in order and return the task's metrics."""
    return task.compute_metrics(predict_rows(model, task, features, tokenizer, batch_size, device), features, raw)


def _row(out: Any, j: int) -> Any:
    """Row ``j`` of a batch's predictions, kept as a one-row batch (tuples are sliced element-wise)."""
    if isinstance(out, tuple):
        return tuple(_row(o, j) for o in out)
    return out[j : j + 1]


def train(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
          eval_raw: Dataset | None, tokenizer: PreTrainedTokenizerBase,
          config: TrainConfig | None = None) -> TrainResult:
    """Train ``model`` on ``task``; evaluate after each epoch; return metrics, history and cost."""
    device = torch.device("cuda" if uses_cuda() else "cpu")
    with PeakMemory(device) as peak:
        result = _train(model, task, train_features, eval_features, eval_raw, tokenizer, config or TrainConfig())
    result.peak_memory_mb = peak.mb
    return result


def _train(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
           eval_raw: Dataset | None, tokenizer, cfg: TrainConfig) -> TrainResult:
    seed_everything(cfg.seed)
    accelerator = Accelerator(
        cpu=_force_cpu(),  # HFT_DEVICE=cpu / --cpu, or several processes and no CUDA (data-parallel over gloo)
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=_mixed_precision(cfg.mixed_precision),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        step_scheduler_with_optimizer=False,
        # BERT's pooler (and, for some heads, other weights) gets no gradient: DDP must not wait for it
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    fast = cfg.fast_cpu and accelerator.device.type == "cpu"
    if accelerator.device.type == "cpu":  # weights in from_pretrained's file mapping: one copy now, not page by page
        own_weights(model)
    with contextlib.ExitStack() as stack:
        # fast_cpu: train only the reachable rows of the word-embedding table (not with checkpoints, which
        # store the model as it is outside training)
        compact = (stack.enter_context(compact_embeddings(model, train_features["input_ids"]))
                   if fast and not (cfg.checkpoint_every or cfg.resume) else None)
        sampler = task.batch_sampler(train_features, cfg.batch_size, cfg.seed, cfg.group_by_length)
        # The loader gets its own generator: creating an iterator then never draws from the global RNG, which
        # dropout uses, so a resumed run replays exactly the random numbers of the uninterrupted one.
        loader = DataLoader(train_features, batch_sampler=sampler, collate_fn=task.collator(tokenizer),
                            generator=torch.Generator().manual_seed(cfg.seed))
        optimizer = _adamw(_param_groups(model, cfg), cfg.lr)
        steps_per_epoch = math.ceil(len(sampler) / cfg.grad_accum)
        total_steps = steps_per_epoch * cfg.epochs
        warmup = int(cfg.warmup_ratio * total_steps)
        if cfg.schedule == "linear":
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
        elif cfg.schedule == "cosine":
            scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)))
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        unwrapped = accelerator.unwrap_model(model)
        inner_optimizer = getattr(optimizer, "optimizer", optimizer)
        fold_clip = fast and accelerator.mixed_precision == "no" and fuses_clipping(inner_optimizer)
        if compact is not None:
            stack.enter_context(follow_optimizer(compact, inner_optimizer))
        if fast:
            stack.enter_context(patched_dropout(unwrapped))
            stack.enter_context(fused_lora(unwrapped))
            stack.enter_context(cpu_attention(unwrapped))
            stack.enter_context(packed_layers(unwrapped))
            stack.enter_context(onednn_linear(unwrapped))
        return _loop(cfg, task, accelerator, model, unwrapped, optimizer, inner_optimizer, fold_clip, scheduler,
                     sampler, loader, eval_features, eval_raw, tokenizer)


def _loop(cfg: TrainConfig, task: Task, accelerator: Accelerator, model: nn.Module, unwrapped: nn.Module,
          optimizer: Any, inner_optimizer: torch.optim.Optimizer, fold_clip: bool, scheduler: Any,
          sampler: Any, loader: DataLoader, eval_features: Dataset | None, eval_raw: Dataset | None,
          tokenizer) -> TrainResult:
    """The epochs: steps, logging, checkpoints, evaluation and early stopping."""
    history: list[dict[str, float]] = []
    step, start_epoch, skip_batches = 0, 0, 0
    best, best_state, bad_epochs, elapsed, seen = -math.inf, None, 0, 0.0, 0
    ckpt = (checkpoint.Checkpointer(cfg.output_dir, accelerator.process_index, accelerator.is_main_process,
                                    accelerator.wait_for_everyone) if cfg.output_dir else None)
    if cfg.resume and ckpt is not None and ckpt.exists():
        state, rng = ckpt.load(asdict(cfg))
        checkpoint.load_model_state(unwrapped, state, ckpt.dir)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, start_epoch, skip_batches = state["step"], state["epoch"], state["batch_in_epoch"]
        history, best, bad_epochs, elapsed, seen = (state["history"], state["best"], state["bad_epochs"],
                                                    state["elapsed"], state["seen"])
        best_state = state.get("best_state")
        if rng is not None:
            checkpoint.set_rng_state(rng)
        accelerator.print(f"[hft_lessons] resumed from step {step} (epoch {start_epoch + 1}, batch {skip_batches})")

    stopped_early = interrupted = False
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        model.train()
        batches = accelerator.skip_first_batches(loader, skip_batches) if skip_batches else loader
        if hasattr(batches, "set_epoch"):  # accelerate's loaders hand their own epoch count to the sampler
            batches.set_epoch(epoch)
        bar = tqdm(total=len(sampler), initial=skip_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and accelerator.is_local_main_process), leave=False,
                   file=sys.stdout, mininterval=1.0)
        running, running_n, batch_in_epoch = torch.zeros((), device=accelerator.device), 0, skip_batches
        t0 = time.perf_counter()
        for batch in batches:
            with accelerator.accumulate(model):
                loss = task.loss(model(**batch), batch)
                checkpoint.check_loss(loss, step + 1, cfg.lr)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    if fold_clip:  # the fused AdamW step applies the clipping scale itself
                        clip_into_optimizer(inner_optimizer, model.parameters(), cfg.max_grad_norm)
                    else:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if fold_clip:
                    inner_optimizer.grad_scale = None
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            seen += batch["input_ids"].shape[0] * accelerator.num_processes
            running += loss.detach()
            running_n += 1
            bar.update(1)
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            if step % cfg.log_every == 0:
                mean_loss = (running / running_n).item()
                history.append({"step": step, "epoch": epoch + batch_in_epoch / len(sampler),
                                "loss": mean_loss, "lr": scheduler.get_last_lr()[0]})
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                running, running_n = torch.zeros((), device=accelerator.device), 0
            if ckpt is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                accelerator.wait_for_everyone()
                ckpt.save({"model": unwrapped.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch,
                           "batch_in_epoch": batch_in_epoch, "history": history, "best": best,
                           "bad_epochs": bad_epochs, "elapsed": elapsed + time.perf_counter() - t0,
                           "seen": seen, "best_state": best_state, "config": asdict(cfg)},
                          checkpoint.rng_state())
            if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
                interrupted = True
                break
        bar.close()
        elapsed += time.perf_counter() - t0
        skip_batches = 0
        if interrupted:
            break
        if eval_features is not None:
            metrics = task.evaluate(unwrapped, eval_features, eval_raw, tokenizer, cfg.eval_batch_size,
                                    accelerator.device)
            history.append({"step": step, "epoch": epoch + 1, **{f"eval_{k}": v for k, v in metrics.items()}})
            accelerator.print(f"[hft_lessons] epoch {epoch + 1}: " +
                              ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if not k.endswith(("_PER", "_ORG", "_LOC", "_MISC"))))
            score = metrics[task.metric]
            if score > best:
                best, bad_epochs = score, 0
                if cfg.early_stopping_patience is not None:
                    best_state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
            else:
                bad_epochs += 1
                if cfg.early_stopping_patience is not None and bad_epochs > cfg.early_stopping_patience:
                    stopped_early = True
                    break
    if best_state is not None and not interrupted:
        unwrapped.load_state_dict(best_state)
    final: dict[str, float] = {}
    if eval_features is not None and not interrupted:
        evals = [h for h in history if any(k.startswith("eval_") for k in h)]
        if best_state is not None:
            evals = [max(evals, key=lambda h: h[f"eval_{task.metric}"])]
        final = {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")}
    accelerator.wait_for_everyone()
    return TrainResult(
        metrics=final, history=history, train_seconds=elapsed,
        train_examples_per_second=seen / elapsed if elapsed > 0 else 0.0,
        steps=step, stopped_early=stopped_early, processes=accelerator.num_processes,
    )
