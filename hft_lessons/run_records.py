"""Training runs recorded by ``benchmarks/application_methods.py`` and shipped with the package.

Chapters 12 and 13 train only the methods they read closely; the other rows of their method tables are these
records: the metrics object of ``python -m hft_lessons finetune`` for each task, method, profile and seed, one
JSON line per run in ``hft_lessons/results/application_methods.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["RECORDS", "read_records", "recorded_runs", "recorded_history"]

RECORDS = Path(__file__).resolve().parent / "results" / "application_methods.jsonl"


def read_records(path: Path = RECORDS) -> list[dict[str, Any]]:
    """Every run recorded in ``path`` (none when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded_runs(task: str, profile: str = "cpu", seed: int = 0, path: Path = RECORDS) -> dict[str, dict]:
    """The recorded runs of ``task`` in ``profile`` with ``seed``, by method (empty when there are none)."""
    return {r["method"]: r for r in read_records(path)
            if r["task"] == task and r["profile"] == profile and r["seed"] == seed}


def recorded_history(run: dict[str, Any]) -> list[dict[str, float]]:
    """A recorded run's per-epoch metrics as history rows (``eval_<name>``), for ``plot_histories``."""
    return [{"epoch": row["epoch"], **{f"eval_{k}": v for k, v in row.items() if k != "epoch"}}
            for row in run.get("epoch_metrics", [])]
