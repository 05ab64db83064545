"""Chapter 7's ten seeds: full fine-tuning and the `hybrid` recipe on SST-2, run from the command line.

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/sst2_seeds.py --seeds 0-9
    python benchmarks/sst2_seeds.py --summary

Every run is ``python -m hft_lessons finetune --task sst2 --method M --profile cpu --seed S`` in its own
process, as a reader would type it (there the seed also draws the 4,000 training sentences, the same for both
methods). Each finished run appends its metrics object, with the method, seed and command, to ``--results``
(default ``benchmarks/results/sst2_seeds.jsonl``); a (method, seed) pair already there is skipped, so the
script can be stopped and started again. ``--summary`` prints each method's mean, standard deviation and range
and the paired differences, which chapter 7 quotes, from that file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("full", "hybrid")
RESULTS = ROOT / "benchmarks" / "results" / "sst2_seeds.jsonl"


def read_rows(results: Path) -> list[dict]:
    """The runs in the results file, in the order they finished (none if it does not exist)."""
    if not results.exists():
        return []
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def parse_seeds(text: str) -> list[int]:
    """``0-9`` or ``0,3,5`` as a list of seeds; ValueError on anything else."""
    if "-" in text:
        first, last = (int(s) for s in text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",") if s]


def summary(rows: list[dict]) -> str:
    """Each method's accuracy over seeds (mean, SD, range) and the paired differences, in points."""
    acc = {m: {r["seed"]: 100 * r["accuracy"] for r in rows if r["method"] == m} for m in METHODS}
    lines = []
    for m in METHODS:
        v = list(acc[m].values())
        if len(v) > 1:
            lines.append(f"{m}: {len(v)} seeds, mean {statistics.mean(v):.2f}, SD {statistics.stdev(v):.2f}, "
                         f"range {min(v):.1f}-{max(v):.1f} ({max(v) - min(v):.1f} points)")
    paired = sorted(set(acc["full"]) & set(acc["hybrid"]))
    if len(paired) > 1:
        d = [acc["hybrid"][s] - acc["full"][s] for s in paired]
        se = statistics.stdev(d) / math.sqrt(len(d))
        within = sum(x >= -1 for x in d)
        ahead = [s for s, x in zip(paired, d, strict=True) if x > 0]
        lines.append(f"hybrid - full over {len(d)} paired seeds: mean {statistics.mean(d):+.2f} points "
                     f"(standard error {se:.2f}), within 1 point on {within}, ahead on seeds {ahead}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every (method, seed) pair the results file lacks, or print its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="a range like 0-9 or comma-separated seeds")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"a subset of: {', '.join(METHODS)}")
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu", "full"))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--summary", action="store_true", help="print the summary of --results and stop")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if args.summary:
        print(summary(read_rows(results)))
        return 0
    methods = [m for m in args.methods.split(",") if m]
    if bad := [m for m in methods if m not in METHODS]:
        parser.exit(2, f"error: --methods {args.methods!r}: unknown {', '.join(bad)}; allowed: "
                       f"{', '.join(METHODS)}\n")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        parser.exit(2, f"error: --seeds {args.seeds!r}: give a range like 0-9 or comma-separated integers\n")
    results.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for seed in seeds:
        for method in methods:
            if any(r["method"] == method and r["seed"] == seed for r in read_rows(results)):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                command = [sys.executable, "-m", "hft_lessons", "finetune", "--task", "sst2",
                           "--method", method, "--profile", args.profile, "--seed", str(seed),
                           "--output-dir", tmp, "--no-progress"]
                print(f"[{method} seed {seed}]", " ".join(command[1:-3]), flush=True)
                proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            metrics = json.loads(proc.stdout.strip().splitlines()[-1])
            metrics.get("run_config", {}).pop("data_dir", None)  # a local path: the file is committed
            command_line = "python -m " + " ".join(command[2:-3])
            row = {"method": method, "seed": seed, "command": command_line, **metrics}
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  accuracy {metrics['accuracy']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
