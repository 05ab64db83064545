"""Checkpoints as one unit, the run's configuration, and the checks that stop a run going wrong quietly.

A checkpoint is the folder ``<output_dir>/checkpoint`` holding ``state.pt`` (model, optimizer, scheduler,
progress), one ``rng_rank<k>.pt`` per process and ``run_config.json``. It is written whole into
``.checkpoint.tmp``, marked complete, and only then renamed into place (the previous one is first renamed to
``.checkpoint.old``). :func:`recover`, called before every resume and every save, finishes or undoes a swap
that a kill interrupted and removes leftovers, so ``--resume`` always finds one complete checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .files import atomic_write, umask_mode

__all__ = ["CHECKPOINT", "STATE_FILE", "RUN_CONFIG_FILE", "Checkpointer", "recover", "has_checkpoint",
           "read_run_config", "check_run_config", "check_loss", "code_version", "rng_state", "set_rng_state",
           "write_json_atomic", "load_model_state", "finite", "TRAIN_FIELDS"]

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pt"
RUN_CONFIG_FILE = "run_config.json"
_TMP, _OLD, _DONE = ".checkpoint.tmp", ".checkpoint.old", "COMPLETE"
CRASH_ENV = "HFT_CHECKPOINT_CRASH"  # tests only: os._exit(137) at the named point of a save

# TrainConfig fields that shape the weights: a resumed run must use the values the checkpoint was made with
TRAIN_FIELDS = ("lr", "head_lr", "layer_decay", "epochs", "batch_size", "weight_decay", "warmup_ratio",
                "schedule", "grad_accum", "max_grad_norm", "group_by_length", "seed", "mixed_precision",
                "fast_cpu")


def code_version() -> str:
    """The version of the hft_lessons code that ran."""
    from . import __version__

    return __version__


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write valid JSON (no NaN/Infinity: they become null) whole or not at all."""
    text = json.dumps(finite(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (also nested) replaced by None, for valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


_CRASH_SEEN: dict[str, int] = {}


def _crash_point(name: str) -> None:
    """Tests only: with HFT_CHECKPOINT_CRASH=<name>:<n>, die at the n-th time the save reaches ``name``."""
    wanted = os.environ.get(CRASH_ENV, "")
    if wanted.split(":")[0] != name:
        return
    _CRASH_SEEN[name] = _CRASH_SEEN.get(name, 0) + 1
    if str(_CRASH_SEEN[name]) == (wanted.split(":") + ["1"])[1]:
        os._exit(137)  # as if killed here, with no clean-up


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's, torch's (and CUDA's) random states."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def recover(output_dir: str | os.PathLike) -> None:
    """Finish or undo a checkpoint swap a kill interrupted, and delete half-written leftovers."""
    out = Path(output_dir)
    ckpt, tmp, old = out / CHECKPOINT, out / _TMP, out / _OLD
    if not ckpt.exists() and old.is_dir():  # killed between the two renames of a save
        os.replace(tmp if (tmp / _DONE).exists() else old, ckpt)
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    if ckpt.is_dir():  # files of older versions, which renamed one file at a time
        for f in ckpt.glob("*.tmp*"):
            f.unlink()


def has_checkpoint(output_dir: str | os.PathLike) -> bool:
    """True when ``output_dir`` holds a complete checkpoint (after :func:`recover`)."""
    return (Path(output_dir) / CHECKPOINT / STATE_FILE).is_file()


def read_run_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The run configuration stored in ``folder`` (an output folder or a checkpoint), or None."""
    path = Path(folder) / RUN_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ValueError(f"{path} is not a readable run configuration (JSON); it is damaged") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a run configuration (expected a JSON object)")
    return data


def check_run_config(saved: Mapping[str, Any], current: Mapping[str, Any],
                     what: str = "the checkpoint") -> None:
    """One ValueError line naming every field where ``current`` differs from ``saved``."""
    keys = sorted(set(saved) | set(current))
    diffs = [f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
    if diffs:
        raise ValueError(f"--resume: this command differs from {what} in: {'; '.join(diffs)}; "
                         "rerun with the checkpoint's settings, or start afresh with --overwrite")


def check_loss(loss: Any, step: int, lr: float) -> None:
    """Stop the run with one line when the loss is NaN or infinite (``step`` counts from 1)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"the training loss became {value} at step {step} (lr {lr:g}); the run was stopped "
                         "before saving weights; try a lower learning rate (--lr)")


class Checkpointer:
    """Save and load the checkpoint of ``output_dir``: every process calls save/load; ``barrier`` syncs."""

    def __init__(self, output_dir: str | os.PathLike, rank: int = 0, is_main: bool = True,
                 barrier: Callable[[], Any] = lambda: None) -> None:
        self.out, self.rank, self.is_main, self.barrier = Path(output_dir), rank, is_main, barrier
        self.dir = self.out / CHECKPOINT
        if is_main and self.out.is_dir():
            recover(self.out)
        barrier()

    def exists(self) -> bool:
        """True when a complete checkpoint is there."""
        return has_checkpoint(self.out)

    def save(self, state: dict[str, Any], rng: dict[str, Any]) -> None:
        """Write the checkpoint as one unit: a new folder, then one rename into place."""
        import torch

        tmp, old = self.out / _TMP, self.out / _OLD
        if self.is_main:
            recover(self.out)
            tmp.mkdir(parents=True)
        self.barrier()
        torch.save(rng, tmp / f"rng_rank{self.rank}.pt")
        _crash_point("after_rng")
        if self.is_main:
            torch.save(state, tmp / STATE_FILE)
            _crash_point("after_state")
            run = self.out / RUN_CONFIG_FILE
            if run.is_file():
                shutil.copyfile(run, tmp / RUN_CONFIG_FILE)
        self.barrier()
        if self.is_main:
            (tmp / _DONE).touch()
            for f in tmp.iterdir():
                os.chmod(f, umask_mode())
            if self.dir.exists():
                os.replace(self.dir, old)
                _crash_point("between_renames")
            os.replace(tmp, self.dir)
            _crash_point("after_swap")
            if old.exists():
                shutil.rmtree(old)
        self.barrier()

    def load(self, config: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``(state, rng)`` of this process; with ``config`` (a TrainConfig as a dict), refuse a mismatch."""
        import torch

        path = self.dir / STATE_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file: one line
            raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}); "
                             "start afresh with --overwrite") from None
        needed = ("model", "optimizer", "scheduler", "step", "epoch", "batch_in_epoch")
        if not isinstance(state, dict) or any(k not in state for k in needed):
            raise ValueError(f"{path} is not a checkpoint of hft_lessons.training; "
                             "start afresh with --overwrite")
        if config is not None and isinstance(state.get("config"), dict):
            saved = {k: state["config"].get(k) for k in TRAIN_FIELDS}
            check_run_config(saved, {k: config.get(k) for k in TRAIN_FIELDS})
        rng_file = self.dir / f"rng_rank{self.rank}.pt"
        rng = torch.load(rng_file, map_location="cpu", weights_only=False) if rng_file.exists() else None
        return state, rng


def load_model_state(model: Any, state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Load a checkpoint's weights, or one line when they belong to another method or task."""
    own = model.state_dict()
    saved = state["model"]
    missing, extra = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [k for k in own if k in saved and tuple(own[k].shape) != tuple(saved[k].shape)]
    if missing or extra or shapes:
        raise ValueError(f"the checkpoint in {path} does not fit this model (another method, task or "
                         f"backbone): {len(missing)} missing, {len(extra)} unexpected, {len(shapes)} "
                         "mis-shaped tensors; "
                         "start afresh with --overwrite")
    model.load_state_dict(saved)
