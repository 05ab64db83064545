"""The course's one training loop, on Hugging Face Accelerate: CPU, one GPU, or many (`accelerate launch`).

Chapter 4 writes this loop by hand (batches, forward, loss, backward, clipping, AdamW, warmup-then-decay,
evaluation). :func:`train` is that loop, read top to bottom in :func:`_run_epoch` and :func:`_step`, plus
what a course-wide trainer needs: devices and processes through Accelerate, mixed precision, checkpoints and
resume, length-grouped batches, layer-wise learning rates, early stopping, and one plug-in hook
(:class:`TrainingPlugin`; the opt-in CPU speed-ups in :mod:`hft_lessons.speedups` use it).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    PreTrainedTokenizerBase,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from . import checkpoint
from .delta.arch import detect, layers, split_task_model
from .devices import cpu_requested, uses_cuda
from .evaluation import evaluate, predict_rows
from .precision import resolve_mixed_precision
from .runtime import seed_everything, switched_off
from .sampler import LengthGroupedBatchSampler
from .tasks.base import Task

__all__ = ["TrainConfig", "TrainResult", "TrainingPlugin", "LoopState", "LengthGroupedBatchSampler",
           "PeakMemory", "train", "evaluate", "predict_rows", "param_groups", "make_optimizer",
           "make_scheduler", "own_weights", "epoch_line", "progress_shown", "PROGRESS_ENV", "SCHEDULES"]

SCHEDULES = ("linear", "cosine", "constant")
# HFT_PROGRESS=off hides every progress bar: set when chapters are executed for the book (course_time, nbval),
# so that stored outputs hold results, not bars; a learner running a chapter sees the bars
PROGRESS_ENV = "HFT_PROGRESS"
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything that shapes a training run."""

    lr: float = 5e-5
    head_lr: float | None = None  # learning rate of the task head; None = lr
    # layer-wise lr decay: each layer below the top trains at decay x the one above
    layer_decay: float | None = None
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
    # CPU speed-ups that change the random stream and rounding, not the maths (plug-in hft_lessons.speedups)
    fast_cpu: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"unknown mixed_precision {self.mixed_precision!r}; "
                             f"allowed: {', '.join(MIXED_PRECISION)}")
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


class TrainingPlugin:
    """The trainer's one hook: ``train(..., plugin=...)`` calls these methods at fixed points of a run.

    This base class does nothing; a plug-in overrides what it needs. ``prepare`` runs before the optimizer
    is built (it may swap parameters); ``attach`` runs once Accelerate has wrapped the model and optimizer.
    Both may enter context managers on ``stack``, which closes when training ends. ``clip`` may take over
    gradient clipping (return True when it did); ``after_step`` runs after every ``optimizer.step()``.
    """

    def prepare(self, model: nn.Module, train_features: Dataset, cfg: TrainConfig,
                stack: contextlib.ExitStack) -> None:
        """Before the optimizer exists."""

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, accelerator: Accelerator,
               stack: contextlib.ExitStack) -> None:
        """After ``accelerator.prepare``: ``model`` unwrapped, ``optimizer`` the torch optimizer inside."""

    def clip(self, optimizer: torch.optim.Optimizer, parameters: Any, max_norm: float) -> bool:
        """Clip the gradients in a way of the plug-in's own; False leaves it to the trainer."""
        return False

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """After each ``optimizer.step()``."""


@dataclass
class LoopState:
    """What the loop carries from batch to batch; a checkpoint stores all of it but the running loss."""

    step: int = 0  # optimizer steps so far
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch done (a resumed run skips them)
    history: list[dict[str, float]] = field(default_factory=list)
    best: float = -math.inf  # the best evaluation score so far
    best_state: dict[str, torch.Tensor] | None = None  # its weights (early stopping only)
    bad_epochs: int = 0  # evaluations in a row without a new best
    elapsed: float = 0.0  # training seconds, evaluation excluded
    seen: int = 0  # training examples, all processes together
    loss_sum: Any = None  # the running loss since the last log line (a tensor: no sync every step)
    loss_count: int = 0
    stopped_early: bool = False
    interrupted: bool = False


@dataclass
class _Run:
    """The prepared pieces of one run, as Accelerate wrapped them."""

    cfg: TrainConfig
    task: Task
    accelerator: Accelerator
    model: nn.Module  # maybe wrapped for data parallelism
    unwrapped: nn.Module
    optimizer: Any  # Accelerate's wrapper around the torch optimizer
    scheduler: Any
    sampler: Any
    loader: DataLoader
    plugin: TrainingPlugin
    tokenizer: PreTrainedTokenizerBase
    eval_features: Dataset | None
    eval_raw: Dataset | None

    @property
    def inner_optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer inside Accelerate's wrapper."""
        return getattr(self.optimizer, "optimizer", self.optimizer)


def _force_cpu() -> bool:
    """True when Accelerate must use the CPU: it was asked for, or several processes and no CUDA."""
    return cpu_requested() or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)


def _layer_depths(model: nn.Module) -> dict[int, int]:
    """How far below the top each backbone parameter sits, by structure: layer k of n is n-1-k, embeddings n.

    Parameters outside the layers and the embeddings (the head, a pooler) are missing: they sit at the top.
    """
    backbone, _ = split_task_model(model)
    try:
        arch = detect(backbone)
    except ValueError:
        raise ValueError(f"layer_decay needs a BERT-family encoder; got {type(backbone).__name__}") from None
    stack = layers(backbone, arch)
    depths = {id(p): len(stack) for p in backbone.get_submodule(arch.embeddings_path).parameters()}
    for k, layer in enumerate(stack):
        depths.update({id(p): len(stack) - 1 - k for p in layer.parameters()})
    return depths


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's groups: the head at ``head_lr``, layer-wise decay, no weight decay on biases and norms."""
    head_module = split_task_model(model)[1]
    head_ids = {id(p) for p in head_module.parameters()} if head_module is not None else set()
    depths = _layer_depths(model) if cfg.layer_decay is not None else {}
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        is_head = id(p) in head_ids
        no_decay = p.ndim < 2  # biases and LayerNorm weights
        depth = 0 if is_head else depths.get(id(p), 0)
        groups.setdefault((is_head, no_decay, depth), []).append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    scale = cfg.layer_decay or 1.0
    return [
        {"params": ps, "lr": ((cfg.head_lr or cfg.lr) if head else cfg.lr) * scale**depth,
         "weight_decay": 0.0 if no_decay else cfg.weight_decay}
        for (head, no_decay, depth), ps in groups.items()
    ]


def make_optimizer(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one pass over all parameters per step) where torch has it."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """The learning-rate schedule: warm-up over ``warmup_ratio`` of the steps, then linear, cosine or flat."""
    warmup = int(cfg.warmup_ratio * total_steps)
    if cfg.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    if cfg.schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)))


@torch.no_grad()
def own_weights(model: nn.Module) -> int:
    """Copy the trainable CPU parameters into memory of their own; return how many bytes were copied.

    ``from_pretrained`` maps the safetensors file privately and hands out parameters that live in that
    mapping. The first optimizer step then copies each 4 KB page on write, and every such copy flushes the
    page from all cores' TLBs: the first step of MiniLM full fine-tuning took about 2.5 s longer on the 2-core
    benchmark machine; a copy in one pass beforehand takes about 20 ms. Values, ``Parameter`` objects and
    ties stay the same.
    """
    copied = 0
    for p in {id(p): p for p in model.parameters()}.values():
        if p.requires_grad and p.device.type == "cpu":
            p.data = p.data.clone(memory_format=torch.contiguous_format)
            copied += p.numel() * p.element_size()
    return copied


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


def progress_shown(requested: bool) -> bool:
    """Whether a run draws its bar: ``requested`` (``TrainConfig.progress``) and not HFT_PROGRESS=off."""
    return requested and not switched_off(PROGRESS_ENV)


def epoch_line(task: Task, epoch: int, metrics: dict[str, float]) -> str:
    """The line printed after each epoch's evaluation: the task's chosen metrics."""
    shown = task.printed_metrics(metrics)
    return f"[hft_lessons] epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())


def _rss_bytes() -> int:
    """The process's resident set size now (Linux /proc; elsewhere the lifetime peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return rss if sys.platform == "darwin" else rss * 1024


def train(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
          eval_raw: Dataset | None, tokenizer: PreTrainedTokenizerBase,
          config: TrainConfig | None = None, plugin: TrainingPlugin | None = None) -> TrainResult:
    """Train ``model`` on ``task``; evaluate after each epoch; return metrics, history and cost.

    ``plugin`` (a :class:`TrainingPlugin`) hooks into the run; ``config.fast_cpu`` on the CPU picks the
    speed-ups of :mod:`hft_lessons.speedups` when no plug-in is given.
    """
    device = torch.device("cuda" if uses_cuda() else "cpu")
    cfg = config or TrainConfig()
    with PeakMemory(device) as peak:
        result = _train(model, task, train_features, eval_features, eval_raw, tokenizer, cfg, plugin)
    result.peak_memory_mb = peak.mb
    return result


def _accelerator(cfg: TrainConfig, model: nn.Module) -> Accelerator:
    return Accelerator(
        cpu=_force_cpu(),  # HFT_DEVICE=cpu / --cpu, or several processes and no CUDA (data parallel, gloo)
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision, model),  # 'auto': hft_lessons.precision
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        step_scheduler_with_optimizer=False,
        # BERT's pooler (and, for some heads, other weights) gets no gradient: DDP must not wait for it
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _fast_cpu_plugin() -> TrainingPlugin:
    """The opt-in CPU speed-ups (``TrainConfig(fast_cpu=True)``)."""
    # imported here on purpose: a run without fast_cpu never loads the speed-ups
    from .speedups import FastCpu

    return FastCpu()


def _train(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
           eval_raw: Dataset | None, tokenizer: PreTrainedTokenizerBase, cfg: TrainConfig,
           plugin: TrainingPlugin | None) -> TrainResult:
    seed_everything(cfg.seed)
    accelerator = _accelerator(cfg, model)
    on_cpu = accelerator.device.type == "cpu"
    if on_cpu:  # kept on every CPU run, not only fast_cpu: it saves ~2.5 s of page copies (see own_weights)
        own_weights(model)
    if plugin is None:
        plugin = _fast_cpu_plugin() if cfg.fast_cpu and on_cpu else TrainingPlugin()
    with contextlib.ExitStack() as stack:
        plugin.prepare(model, train_features, cfg, stack)
        sampler = task.batch_sampler(train_features, cfg.batch_size, cfg.seed, cfg.group_by_length)
        # The loader gets its own generator: creating an iterator then never draws from the global RNG, which
        # dropout uses, so a resumed run replays exactly the random numbers of the uninterrupted one.
        loader = DataLoader(train_features, batch_sampler=sampler, collate_fn=task.collator(tokenizer),
                            generator=torch.Generator().manual_seed(cfg.seed))
        optimizer = make_optimizer(param_groups(model, cfg), cfg.lr)
        scheduler = make_scheduler(optimizer, cfg, math.ceil(len(sampler) / cfg.grad_accum) * cfg.epochs)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        run = _Run(cfg, task, accelerator, model, accelerator.unwrap_model(model), optimizer, scheduler,
                   sampler, loader, plugin, tokenizer, eval_features, eval_raw)
        plugin.attach(run.unwrapped, run.inner_optimizer, accelerator, stack)
        return _loop(run)


def _loop(run: _Run) -> TrainResult:
    """The epochs: train, evaluate, maybe stop early; then the final metrics."""
    cfg = run.cfg
    acc = run.accelerator
    ckpt = (checkpoint.Checkpointer(cfg.output_dir, acc.process_index, acc.is_main_process,
                                    acc.wait_for_everyone)
            if cfg.output_dir else None)
    state = _resume(run, ckpt) if cfg.resume and ckpt is not None and ckpt.exists() else LoopState()
    for epoch in range(state.epoch, cfg.epochs):
        state.epoch = epoch
        _run_epoch(run, state, ckpt)
        if state.interrupted:
            break
        if run.eval_features is not None and _evaluate_epoch(run, state):
            break
    return _finish(run, state)


def _run_epoch(run: _Run, state: LoopState, ckpt: checkpoint.Checkpointer | None) -> None:
    """One pass over the training batches (from ``state.batch_in_epoch`` on, after a resume)."""
    cfg, accelerator = run.cfg, run.accelerator
    run.sampler.set_epoch(state.epoch)
    run.model.train()
    skip = state.batch_in_epoch
    batches = accelerator.skip_first_batches(run.loader, skip) if skip else run.loader
    if hasattr(batches, "set_epoch"):  # accelerate's loaders hand their own epoch count to the sampler
        batches.set_epoch(state.epoch)
    bar = tqdm(total=len(run.sampler), initial=skip, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
               disable=not (progress_shown(cfg.progress) and accelerator.is_local_main_process), leave=False,
               file=sys.stdout, mininterval=1.0)
    state.loss_sum, state.loss_count = torch.zeros((), device=accelerator.device), 0
    t0 = time.perf_counter()
    for batch in batches:
        loss = _step(run, batch, state.step + 1)
        state.batch_in_epoch += 1
        state.seen += batch["input_ids"].shape[0] * accelerator.num_processes
        state.loss_sum += loss.detach()
        state.loss_count += 1
        bar.update(1)
        if not accelerator.sync_gradients:  # accumulating: no optimizer step yet
            continue
        run.scheduler.step()
        state.step += 1
        _log_and_checkpoint(run, state, bar, ckpt, time.perf_counter() - t0)
        if cfg.stop_after_steps is not None and state.step >= cfg.stop_after_steps:
            state.interrupted = True
            break
    bar.close()
    state.elapsed += time.perf_counter() - t0
    if not state.interrupted:
        state.batch_in_epoch = 0


def _step(run: _Run, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
    """One batch: forward, loss, backward, clipping, optimizer step (Accelerate accumulates gradients)."""
    with run.accelerator.accumulate(run.model):
        loss = run.task.loss(run.model(**batch), batch)
        checkpoint.check_loss(loss, step, run.cfg.lr)  # NaN/inf: stop, one line
        run.accelerator.backward(loss)
        if run.accelerator.sync_gradients and run.cfg.max_grad_norm:
            if not run.plugin.clip(run.inner_optimizer, run.model.parameters(), run.cfg.max_grad_norm):
                run.accelerator.clip_grad_norm_(run.model.parameters(), run.cfg.max_grad_norm)
        run.optimizer.step()
        run.plugin.after_step(run.inner_optimizer)
        run.optimizer.zero_grad(set_to_none=True)
    return loss


def _log_and_checkpoint(run: _Run, state: LoopState, bar: Any, ckpt: checkpoint.Checkpointer | None,
                        epoch_seconds: float) -> None:
    """After a step: a history row every ``log_every`` steps, a checkpoint every ``checkpoint_every``."""
    cfg = run.cfg
    if state.step % cfg.log_every == 0:
        mean_loss = (state.loss_sum / state.loss_count).item()
        epoch = state.epoch + state.batch_in_epoch / len(run.sampler)
        state.history.append({"step": state.step, "epoch": epoch,
                              "loss": mean_loss, "lr": run.scheduler.get_last_lr()[0]})
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        state.loss_sum, state.loss_count = torch.zeros((), device=run.accelerator.device), 0
    if ckpt is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
        run.accelerator.wait_for_everyone()
        saved = {f.name: getattr(state, f.name) for f in fields(state) if f.name not in _NOT_CHECKPOINTED}
        saved.update(model=run.unwrapped.state_dict(), optimizer=run.optimizer.state_dict(),
                     scheduler=run.scheduler.state_dict(), elapsed=state.elapsed + epoch_seconds,
                     config=asdict(cfg))
        ckpt.save(saved, checkpoint.rng_state())


_NOT_CHECKPOINTED = ("loss_sum", "loss_count", "stopped_early", "interrupted")


def _resume(run: _Run, ckpt: checkpoint.Checkpointer) -> LoopState:
    """Load the model, optimizer, schedule, loop state and random state of the last checkpoint."""
    saved, rng = ckpt.load(asdict(run.cfg))
    checkpoint.load_model_state(run.unwrapped, saved, ckpt.dir)
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    state = LoopState(**{k: saved[k] for k in ("step", "epoch", "batch_in_epoch", "history", "best",
                                               "bad_epochs", "elapsed", "seen")},
                      best_state=saved.get("best_state"))
    if rng is not None:
        checkpoint.set_rng_state(rng)
    run.accelerator.print(f"[hft_lessons] resumed from step {state.step} "
                          f"(epoch {state.epoch + 1}, batch {state.batch_in_epoch})")
    return state


def _evaluate_epoch(run: _Run, state: LoopState) -> bool:
    """Evaluate after an epoch, print the task's chosen metrics, track the best; True means stop early."""
    cfg, task = run.cfg, run.task
    metrics = task.evaluate(run.unwrapped, run.eval_features, run.eval_raw, run.tokenizer,
                            cfg.eval_batch_size, run.accelerator.device)
    state.history.append({"step": state.step, "epoch": state.epoch + 1,
                          **{f"eval_{k}": v for k, v in metrics.items()}})
    run.accelerator.print(epoch_line(task, state.epoch + 1, metrics))
    score = metrics[task.metric]
    if score > state.best:
        state.best, state.bad_epochs = score, 0
        if cfg.early_stopping_patience is not None:
            state.best_state = {k: v.detach().clone() for k, v in run.unwrapped.state_dict().items()}
        return False
    state.bad_epochs += 1
    state.stopped_early = (cfg.early_stopping_patience is not None
                           and state.bad_epochs > cfg.early_stopping_patience)
    return state.stopped_early


def _finish(run: _Run, state: LoopState) -> TrainResult:
    """Restore the best weights (early stopping) and collect the final metrics and costs."""
    if state.best_state is not None and not state.interrupted:
        run.unwrapped.load_state_dict(state.best_state)
    final: dict[str, float] = {}
    if run.eval_features is not None and not state.interrupted:
        evals = [h for h in state.history if any(k.startswith("eval_") for k in h)]
        if state.best_state is not None:
            evals = [max(evals, key=lambda h: h[f"eval_{run.task.metric}"])]
        final = {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")}
    run.accelerator.wait_for_everyone()
    return TrainResult(
        metrics=final, history=state.history, train_seconds=state.elapsed,
        train_examples_per_second=state.seen / state.elapsed if state.elapsed > 0 else 0.0,
        steps=state.step, stopped_early=state.stopped_early, processes=run.accelerator.num_processes,
    )
