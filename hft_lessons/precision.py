"""Which mixed precision "auto" means: a rule that reads measured speeds and accuracies, or today's choice.

``choose_mixed_precision`` is a pure function. Without measurements it returns what the trainer has always
picked ("bf16" on a CUDA GPU that supports it, else "fp16"; "no" elsewhere). Given a table of measurements
(the rows that ``benchmarks/mixed_precision.py`` writes, read back with ``read_measured_table``), it returns
the fastest precision whose accuracy stays within ``accuracy_tolerance`` of float32's, for the measured model
nearest in size, and keeps float32 unless another precision is at least ``min_speedup`` times as fast.
``MEASURED`` holds the table that the default uses: empty until a GPU run's rows are copied into it, so the
default is unchanged until then.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PRECISIONS",
    "MEASURED",
    "choose_mixed_precision",
    "read_measured_table",
    "resolve_mixed_precision",
]

PRECISIONS = ("no", "bf16", "fp16")  # accelerate's names: "no" is float32
_ALIASES = {
    "fp32": "no",
    "float32": "no",
    "no": "no",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
}

# Rows measured on a GPU (benchmarks/mixed_precision.py --accuracy), as read_measured_table returns them.
# Empty: no GPU table has been recorded yet, so "auto" keeps the trainer's original choice.
MEASURED: tuple[dict[str, Any], ...] = ()


def _precision(name: object) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown precision {name!r} in the measured table; allowed: {', '.join(_ALIASES)}")
    return _ALIASES[key]


def _allowed(device_type: str, bf16_supported: bool) -> tuple[str, ...]:
    if device_type != "cuda":
        return ("no",)
    return ("no", "bf16", "fp16") if bf16_supported else ("no", "fp16")


def _nearest_model(rows: Sequence[Mapping[str, Any]], model_size: int) -> list[Mapping[str, Any]]:
    """The rows of the measured model whose parameter count is nearest to ``model_size`` (on a log scale)."""
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[str(r["model"])] = min(int(r["params"]), sizes.get(str(r["model"]), int(r["params"])))
    nearest = min(sizes, key=lambda m: (abs(math.log(sizes[m]) - math.log(model_size)), sizes[m]))
    return [r for r in rows if str(r["model"]) == nearest]


def _relative_speeds(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each precision's median speed relative to float32, over the shapes where both were timed."""
    fp32 = {
        (r.get("measure", ""), r.get("batch"), r.get("length")): float(r["examples_per_second"])
        for r in rows
        if _precision(r["precision"]) == "no"
    }
    ratios: dict[str, list[float]] = {}
    for r in rows:
        key = (r.get("measure", ""), r.get("batch"), r.get("length"))
        if key in fp32 and fp32[key] > 0:
            ratios.setdefault(_precision(r["precision"]), []).append(
                float(r["examples_per_second"]) / fp32[key]
            )
    return {p: statistics.median(v) for p, v in ratios.items()}


def _accuracy_ok(rows: Iterable[Mapping[str, Any]], tolerance: float) -> dict[str, bool]:
    """False for a precision whose accuracy falls more than ``tolerance`` below float32's (any model)."""
    acc: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        value = r.get("accuracy")
        if value not in (None, ""):
            acc.setdefault((str(r["model"]), _precision(r["precision"])), []).append(float(value))
    ok: dict[str, bool] = {}
    for (model, prec), values in acc.items():
        base = acc.get((model, "no"))
        if base is not None:
            good = statistics.mean(values) >= statistics.mean(base) - tolerance
            ok[prec] = ok.get(prec, True) and good
    return ok


def choose_mixed_precision(
    device_type: str,
    bf16_supported: bool,
    model_size: int,
    measured_table: Sequence[Mapping[str, Any]] | None = None,
    accuracy_tolerance: float = 0.01,
    min_speedup: float = 1.05,
) -> str:
    """The mixed precision ("no", "bf16" or "fp16") that "auto" means for this device and model size."""
    if model_size < 1:
        raise ValueError(f"model_size must be a positive parameter count, got {model_size}")
    if device_type != "cuda":
        return "no"
    allowed = _allowed(device_type, bf16_supported)
    table = MEASURED if measured_table is None else measured_table
    if not table:  # no measurement: the trainer's original choice
        return "bf16" if bf16_supported else "fp16"
    rows = _nearest_model(table, model_size)
    speeds = _relative_speeds(rows)
    ok = _accuracy_ok(table, accuracy_tolerance)
    best, best_speed = "no", 1.0
    for prec in allowed:
        speed = speeds.get(prec)
        if prec == "no" or speed is None or not ok.get(prec, True):
            continue
        if speed >= min_speedup and speed > best_speed:
            best, best_speed = prec, speed
    return best


def read_measured_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a CSV written by ``benchmarks/mixed_precision.py`` ('#' lines are comments)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no measured table at {path}; write one with benchmarks/mixed_precision.py")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    needed = {"model", "params", "precision", "examples_per_second"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(
            f"{path} is not a mixed-precision table; it needs the columns {', '.join(sorted(needed))}"
        )
    for r in rows:
        r["precision"] = _precision(r["precision"])
    return rows


def resolve_mixed_precision(choice: str, model: Any) -> str:
    """``choice`` unless it is "auto"; then the rule above for this process's device and ``model``'s size."""
    if choice != "auto":
        return choice
    import torch

    from .devices import uses_cuda

    cuda = uses_cuda()
    size = sum(p.numel() for p in model.parameters())
    return choose_mixed_precision(
        "cuda" if cuda else "cpu", cuda and torch.cuda.is_bf16_supported(), max(size, 1)
    )
