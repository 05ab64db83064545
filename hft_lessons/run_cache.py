"""A cache of finished training runs: a run is known by everything that decides its result, and trains once.

``cached_train`` takes the arguments of :func:`hft_lessons.training.train`. Before training it computes the
run's key from the model's weights and which of them train, the task, the training and evaluation data, the
training configuration and the version of this package's code (a hash of its source). If the user's cache
holds a run with that key, the trained weights are loaded into the model and the stored result is returned,
with one line saying so; otherwise the model trains and the run is stored. An entry that is damaged is never
trusted: it is trained again and replaced. Other code gives other keys, so its entries are never used.

The cache lives in ``$XDG_CACHE_HOME/hft_lessons/runs`` (``~/.cache/hft_lessons/runs``). ``HFT_RUN_CACHE``
moves it to another folder, or turns it off with ``off`` (also ``0``, ``no``, ``none``, ``false``). A reused
run prints the one line that says so, then the epoch lines the run printed when it trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from . import training
from .runtime import switched_off
from .tasks.base import Task

__all__ = ["CACHE_ENV", "REUSED", "cache_dir", "source_hash", "run_key", "cached_train"]

CACHE_ENV = "HFT_RUN_CACHE"
REUSED = "[hft_lessons] run cache: reused"  # how the line that reports a reused run begins
_WEIGHTS, _RESULT = "weights.safetensors", "result.json"
_NOT_IN_KEY = {"progress"}  # whether a bar is drawn changes nothing a run learns


def cache_dir() -> Path | None:
    """The run cache's folder, or None when ``HFT_RUN_CACHE`` turns it off."""
    if switched_off(CACHE_ENV):
        return None
    value = os.environ.get(CACHE_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hft_lessons" / "runs"


def source_hash() -> str:
    """A hash of every source file of the package: any change to the code gives other keys."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of named tensors: names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _data_digest(data: Dataset | Mapping[str, Dataset] | None) -> str | None:
    """A hash of a dataset's (or of named datasets') columns and values; None for no data."""
    if data is None:
        return None
    if isinstance(data, Mapping):
        return hashlib.sha256(json.dumps({k: _data_digest(v) for k, v in data.items()},
                                         sort_keys=True).encode()).hexdigest()
    columns = data.with_format(None).to_dict()  # plain Python lists, whatever format the caller set
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()


def run_key(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
            eval_raw: Dataset | Mapping[str, Dataset] | None,
            config: training.TrainConfig) -> tuple[str, dict[str, Any]]:
    """The run's key and the parts it is made of (what ``train`` would be given, and the code)."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_KEY}
    parts = {
        "code": source_hash(), "torch": torch.__version__, "task": task.name, "model": type(model).__name__,
        "weights": _tensor_digest(model.state_dict()),
        "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
        "train_data": _data_digest(train_features), "eval_data": _data_digest(eval_features),
        "eval_raw": _data_digest(eval_raw), "config": json.loads(json.dumps(settings, default=str)),
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], parts


def _load(entry: Path, key: str, model: nn.Module) -> training.TrainResult | None:
    """The stored result, its weights loaded into ``model``; None if the entry is missing or damaged."""
    try:
        stored = json.loads((entry / _RESULT).read_text())
        if stored.get("key") != key:
            return None
        weights = load_file(str(entry / _WEIGHTS))
        if _tensor_digest(weights) != stored["weights_digest"]:
            return None
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if set(weights) != set(trainable) or any(w.shape != trainable[n].shape for n, w in weights.items()):
            return None  # checked before loading: a model is never left half-loaded
        missing = model.load_state_dict(weights, strict=False)
        if missing.unexpected_keys:
            return None
        model.train(stored["model_training"])
        return training.TrainResult(**stored["result"])
    except Exception:  # noqa: BLE001 - whatever a damaged entry raises (safetensors has its own errors)
        return None


def _store(entry: Path, key: str, parts: dict[str, Any], model: nn.Module,
           result: training.TrainResult) -> None:
    """Write the entry whole or not at all: into a temporary folder, then renamed."""
    weights = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    tmp = entry.with_name(f".{entry.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / _WEIGHTS))
    record = {"key": key, "parts": parts, "weights_digest": _tensor_digest(weights),
              "model_training": model.training, "result": dataclasses.asdict(result)}
    (tmp / _RESULT).write_text(json.dumps(record, indent=1, allow_nan=True))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)


def _replay(task: Task, result: training.TrainResult) -> None:
    """Print the epoch lines the run printed when it trained, so that a reused run reads as a trained one."""
    for row in result.history:
        metrics = {k[5:]: v for k, v in row.items() if k.startswith("eval_")}
        if metrics:
            print(training.epoch_line(task, int(row["epoch"]), metrics), flush=True)


def cached_train(model: nn.Module, task: Task, train_features: Dataset, eval_features: Dataset | None,
                 eval_raw: Dataset | Mapping[str, Dataset] | None, tokenizer: PreTrainedTokenizerBase,
                 config: training.TrainConfig | None = None, label: str = "") -> training.TrainResult:
    """``training.train`` with the run cache: a run trained before (same key) is loaded instead of trained."""
    cfg = config or training.TrainConfig()
    folder = cache_dir()
    if folder is None or cfg.output_dir:  # a run that writes checkpoints to a folder always trains
        return training.train(model, task, train_features, eval_features, eval_raw, tokenizer, cfg)
    key, parts = run_key(model, task, train_features, eval_features, eval_raw, cfg)
    entry = folder / key
    name = f" {label}" if label else ""
    if entry.exists():
        result = _load(entry, key, model)
        if result is not None:
            print(f"{REUSED} the trained run{name} ({key[:12]}; "
                  f"{CACHE_ENV}=off retrains)", flush=True)
            _replay(task, result)
            return result
        print(f"[hft_lessons] run cache: entry {key[:12]} is damaged; training again",
              flush=True)
    result = training.train(model, task, train_features, eval_features, eval_raw, tokenizer, cfg)
    try:
        _store(entry, key, parts, model, result)
    except OSError as err:  # a full or read-only disk costs the cache, never the run
        print(f"[hft_lessons] run cache: could not store the run ({err.strerror or err})", flush=True)
    return result
