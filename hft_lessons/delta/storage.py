"""Save and load only what a delta method trained: its weights, the task head, and the configs."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..files import atomic_write
from .arch import split_task_model
from .base import config_from_dict
from .core import applied_configs, apply, check_not_merged, delta_parameters

__all__ = ["save", "load", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE = "delta_config.json"
WEIGHTS_FILE = "delta_weights.safetensors"
FORMAT = "hft-delta/1"


def _trained_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The delta parameters and the head's state, by their names in ``model``."""
    backbone, head = split_task_model(model)
    tensors: dict[str, torch.Tensor] = dict(delta_parameters(model))
    if head is not None:
        tensors.update({f"head.{n}": t for n, t in head.state_dict(keep_vars=True).items()})
    return tensors


def save(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``delta_config.json`` and ``delta_weights.safetensors`` (delta + head) to ``directory``."""
    backbone, head = split_task_model(model)
    check_not_merged(backbone, "save")
    configs = applied_configs(model)
    if not configs:
        raise ValueError("no delta method is applied to this model; call delta.apply(model, config) first")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: t.detach().to("cpu", copy=True).contiguous() for n, t in _trained_tensors(model).items()}
    meta = {"format": FORMAT, "head": head is not None, "methods": [c.to_dict() for c in configs]}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def load(model: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Apply the saved configs to a fresh ``model`` (backbone or task model) and load the saved weights."""
    folder = Path(directory)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(f"{str(folder)!r} is not a saved delta: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown delta format {meta.get('format')!r}; this version reads {FORMAT!r}")
    has_head = split_task_model(model)[1] is not None
    if bool(meta.get("head")) != has_head:
        saved, given = (
            ("a task model", "a bare backbone") if meta.get("head") else ("a bare backbone", "a task model")
        )
        raise ValueError(
            f"the delta in {str(folder)!r} was saved from {saved}; load it into {saved}, not {given}"
        )
    configs = [config_from_dict(c) for c in meta["methods"]]
    saved = load_file(str(folder / WEIGHTS_FILE))
    _load_into(_shadow(model), configs, saved)  # check on a weightless copy first: failing changes nothing
    _load_into(model, configs, saved)
    return model


def _shadow(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose tensors are empty "meta" tensors: same structure and shapes, no memory."""
    memo: dict[int, object] = {}
    for t in [*model.parameters(), *model.buffers()]:
        empty = torch.empty_like(t, device="meta")
        is_param = isinstance(t, nn.Parameter)
        memo[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if is_param else empty
    return copy.deepcopy(model, memo)


def _load_into(model: nn.Module, configs: list, saved: dict[str, torch.Tensor]) -> None:
    apply(model, configs)
    targets = _trained_tensors(model)
    if set(saved) != set(targets):
        missing, extra = sorted(set(targets) - set(saved)), sorted(set(saved) - set(targets))
        raise ValueError(
            f"saved weights do not match the model: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, tensor in saved.items():
        if targets[name].shape != tensor.shape:
            raise ValueError(
                f"{name}: saved shape {tuple(tensor.shape)} != model shape {tuple(targets[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in saved.items():
            targets[name].copy_(tensor)
