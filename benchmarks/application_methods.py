"""The application chapters' method comparisons, run as commands: every method on a task's chapter budget.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/application_methods.py \
        --task squad --methods full,adapter_layer,lora,adapter

Chapters 12 (named entities) and 13 (question answering) train only the methods they read closely, so that
each runs in minutes on a laptop; the other methods of their comparison tables come from this file. Each run
is

    python -m hft_lessons finetune --task TASK --method METHOD --profile PROFILE --seed SEED

in a process of its own, with the run cache off (``HFT_RUN_CACHE=off``: every time in the file is a run's
own), on the same data, recipe and seed as the chapter's loop, so a method the chapter trains gets the same
metrics here. Besides the metrics object, a row keeps the metrics printed after each epoch
(``epoch_metrics``), for the chapters' learning curves. Every run appends the command's metrics object (one
JSON line) to ``--results`` (default ``hft_lessons/results/application_methods.jsonl``: it ships with the
package, so a chapter in Colab reads it too, through ``hft_lessons.run_records``); runs already there are
skipped. Run it on an otherwise idle machine: the times are part of the record.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hft_lessons.run_records import recorded_runs

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("full", "adapter_layer", "lora", "adapter", "hybrid")
TASKS = ("sst2", "conll2003", "squad")
EPOCH_LINE = re.compile(r"\[hft_lessons\] epoch (?P<epoch>\d+): (?P<metrics>.+)$")


def run_one(task: str, method: str, profile: str, seed: int) -> dict:
    """Run the finetune command for one method in a process of its own; return its metrics object."""
    env = {**os.environ, "HFT_RUN_CACHE": "off", "HFT_PROGRESS": "off",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "hft_lessons", "finetune", "--task", task, "--method", method,
               "--profile", profile, "--seed", str(seed), "--no-progress"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    lines = proc.stdout.strip().splitlines()
    row = json.loads(lines[-1])
    if row["run_config"].get("data_dir"):  # the file ships with the package: no folder of this machine
        row["run_config"]["data_dir"] = "$HFT_DATA_DIR"
    return {**row, "epoch_metrics": epoch_metrics(lines)}


def epoch_metrics(lines: list[str]) -> list[dict[str, float]]:
    """The metrics the command printed after each epoch ("[hft_lessons] epoch N: name value, ...")."""
    rows = []
    for line in lines:
        match = EPOCH_LINE.match(line)
        if match:
            pairs = (item.rsplit(" ", 1) for item in match["metrics"].split(", "))
            rows.append({"epoch": int(match["epoch"]), **{k: float(v) for k, v in pairs}})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every requested method missing from the results file, one process per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"a subset of: {', '.join(METHODS)}")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=ROOT / "hft_lessons" / "results" /
                        "application_methods.jsonl")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        parser.exit(2, f"error: --methods: unknown {', '.join(bad)}; allowed: {', '.join(METHODS)}\n")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for method in methods:
        if method in recorded_runs(args.task, args.profile, args.seed, args.results):
            continue
        row = run_one(args.task, method, args.profile, args.seed)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        shown = {k: row[k] for k in ("accuracy", "f1", "exact_match") if k in row}
        print(args.task, method, shown, f"{row['train_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
