"""Chapter 10's comparison over seeds: the jointly trained hybrid, a shared-delta model of chapter 9's design,
single-task hybrids.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/multitask_hybrid_seeds.py --seeds 0,1,2

Every run is the command line as a reader would type it (``python -m hft_lessons multitask ...``), in its
own process, on chapter 9's budgets (``BUDGET``: 1,500 / 1,000 / 400 training examples of SST-2 /
CoNLL-2003 / SQuAD, 500 / 500 / 200 for evaluation, 2 epochs, the ``cpu`` profile's backbone and recipes).
``--budget profile`` uses the profile's own budgets instead (one joint run: 17 minutes of training on 2 cores;
``--budget profile --designs joint_hybrid --seeds 0 --results
benchmarks/results/multitask_hybrid_profile_budget.jsonl`` wrote that file).

- ``joint_hybrid``: ``--tasks sst2,conll2003,squad --method hybrid --task-adapter pfeiffer`` (a shared LoRA +
  BitFit delta, a Pfeiffer adapter and a head per task);
- ``joint_shared``: ``--tasks sst2,conll2003,squad --method hybrid`` (chapter 9's design: one shared delta, a
  head per task; with this chapter's hybrid delta and T = 2 sampling, not chapter 9's LoRA and proportional
  sampling);
- ``single_<task>``: ``--tasks <task> --method hybrid --task-adapter pfeiffer`` (the same design on one task,
  with that task's own batch size and recipe);
- ``single_sst2_batch16``, ``single_conll2003_decay``: a single-task run with the one setting the joint run
  imposes on that task (SST-2: batches of 16; CoNLL-2003: SST-2's layer decay 0.9), to tell what costs
  a point.

Each finished run appends one JSON line (its metrics object, the parameters it stored, total and per part) to
``--results`` (default ``benchmarks/results/multitask_hybrid_seeds.jsonl``); a run already in the file (same
design and seed) is skipped, so the script can be stopped and started again. ``--designs`` picks the designs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("sst2", "conll2003", "squad")
DESIGNS = {
    "joint_hybrid": ["--tasks", ",".join(TASKS), "--task-adapter", "pfeiffer"],
    "joint_shared": ["--tasks", ",".join(TASKS)],
    **{f"single_{t}": ["--tasks", t, "--task-adapter", "pfeiffer"] for t in TASKS},
    # what the joint run changes for one task: SST-2 trains in batches of 16 (the smallest task batch),
    # CoNLL-2003 with SST-2's layer decay 0.9 (the first task's recipe drives the joint run)
    "single_sst2_batch16": ["--tasks", "sst2", "--task-adapter", "pfeiffer", "--batch-size", "16"],
    "single_conll2003_decay": ["--tasks", "conll2003", "--task-adapter", "pfeiffer", "--layer-decay", "0.9"],
}


# chapter 9's budgets (notebooks/09_multitask.ipynb: CPU_TRAIN_CAP, CPU_EVAL_CAP, 2 epochs)
BUDGET = ["--max-train", "sst2=1500,conll2003=1000,squad=400",
          "--max-eval", "sst2=500,conll2003=500,squad=200", "--epochs", "2"]


def stored(model_dir: Path) -> dict[str, int]:
    """Numbers stored by a run: the parts of a hybrid, or chapter 9's single delta file (delta + heads)."""
    from safetensors.torch import load_file

    from hft_lessons.multitask_hybrid import stored_parameters

    if (model_dir / "shared").is_dir():
        return stored_parameters(model_dir)
    tensors = load_file(str(model_dir / "delta_weights.safetensors"))
    counts = {t: sum(v.numel() for k, v in tensors.items() if k.startswith(f"head.{t}.")) for t in TASKS}
    counts = {k: v for k, v in counts.items() if v}
    counts["shared"] = sum(v.numel() for k, v in tensors.items() if not k.startswith("head."))
    counts["total"] = sum(v.numel() for v in tensors.values())
    return counts


def done(results: Path) -> set[tuple[str, int]]:
    """(design, seed) pairs already in the results file."""
    if not results.exists():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["design"], r["seed"]) for r in rows}


def main(argv: list[str] | None = None) -> int:
    """Run every design for every seed that the results file lacks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--designs", default=",".join(DESIGNS), help=f"a subset of: {', '.join(DESIGNS)}")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--budget", default="chapter", choices=("chapter", "profile"),
                        help="chapter 9's budgets (default) or the profile's own")
    parser.add_argument(
        "--results", default=str(ROOT / "benchmarks" / "results" / "multitask_hybrid_seeds.jsonl")
    )
    args = parser.parse_args(argv)
    designs = [d for d in args.designs.split(",") if d]
    bad = [d for d in designs if d not in DESIGNS]
    if bad:
        parser.exit(2, f"error: --designs {args.designs!r}: unknown {', '.join(bad)}; "
                       f"allowed: {', '.join(DESIGNS)}\n")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.exit(2, f"error: --seeds {args.seeds!r}: give comma-separated integers\n")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for seed in seeds:
        for design in designs:
            if (design, seed) in done(results):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                command = [sys.executable, "-m", "hft_lessons", "multitask", "--method", "hybrid",
                           *DESIGNS[design], *(BUDGET if args.budget == "chapter" else []),
                           "--profile", args.profile, "--seed", str(seed),
                           "--output-dir", tmp, "--no-progress"]
                print(f"[{design} seed {seed}]", " ".join(command[1:]), flush=True)
                proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return proc.returncode
                metrics = json.loads(proc.stdout.strip().splitlines()[-1])
                row = {"design": design, "seed": seed, "command": "python -m " + " ".join(command[2:-3]),
                       **metrics, "stored_params": stored(Path(tmp) / "model")}
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: row[k] for k in row if k.endswith(("accuracy", "_f1", "seconds"))}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
