"""Why UniPELT's old recipe trailed full fine-tuning on SST-2: that recipe against variants, over seeds (cpu).

    HF_HUB_OFFLINE=1 HFT_DATA_DIR=/path/to/datasets python benchmarks/unipelt_sst2.py --seeds 0,1,2

Each run is ``python -m hft_lessons finetune --task sst2 --method unipelt --profile cpu --seed S`` with the
``unipelt`` recipe replaced by a variant (in a process of its own):

- ``recipe``: the recipe as it was before this study (gated LoRA r=8 on query/value, a gated adapter after the
  FFN, 10 gated prefixes; lr 1e-3, no layer decay), rebuilt from ``ORIGINAL`` whatever the ``unipelt`` recipe
  is today;
- ``lr2e-3``: the same at the learning rate of the ``lora`` and ``hybrid`` recipes;
- ``all_linears``: gated LoRA on every projection (as the ``hybrid`` recipe's LoRA), lr 2e-3;
- ``all_linears_decay``: that, with the ``hybrid`` recipe's SST-2 layer decay 0.9. This variant is today's
  ``unipelt`` recipe (gated LoRA on every projection and lr 2e-3 in the recipe, the decay as its SST-2
  override in ``hft_lessons.methods.TASK_OVERRIDES``; the script removes that override, so every variant
  starts from ``ORIGINAL``).

Over seeds 0/1/2 (``benchmarks/results/unipelt_sst2.jsonl``) the variants reached mean accuracies of 0.827
(``recipe``), 0.837 (``lr2e-3``), 0.844 (``all_linears``) and 0.856 (``all_linears_decay``:
0.8532/0.8635/0.8521).

Every run appends one JSON line (the command's metrics object, the variant and its mean gate value per
component after training) to ``--results`` (default ``benchmarks/results/unipelt_sst2.jsonl``); runs already
there are skipped.
Full fine-tuning's reference (10 seeds, the same command with ``--method full``): mean accuracy 0.8541.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _original_configs() -> list:
    """The recipe's delta config before this study: gated LoRA on query and value only."""
    from hft_lessons import delta

    return [delta.UniPELTConfig(r=8, alpha=16, lora_modules=("query", "value"), num_virtual_tokens=10)]


# the recipe before this study: its config and rates (the variants change these)
ORIGINAL = {"configs": _original_configs, "lr": 1e-3, "layer_decay": None}
VARIANTS = {
    "recipe": ({}, {}),
    "lr2e-3": ({}, {"lr": 2e-3}),
    "all_linears": ({"lora_modules": "ALL"}, {"lr": 2e-3}),
    "all_linears_decay": ({"lora_modules": "ALL"}, {"lr": 2e-3, "layer_decay": 0.9}),
}


def variant_recipe(variant: str):
    """The ``unipelt`` recipe of ``variant``: ``ORIGINAL`` with the variant's changes (a methods.Recipe)."""
    from hft_lessons import delta, methods

    config_changes, recipe_changes = VARIANTS[variant]
    base = replace(methods.RECIPES["unipelt"], **ORIGINAL)
    changes = {k: (delta.ROLES if v == "ALL" else v) for k, v in config_changes.items()}
    make = base.configs

    def configs() -> list:
        return [replace(c, **changes) for c in make()]

    return replace(base, configs=configs, **recipe_changes)


def run_one(variant: str, seed: int, profile: str = "cpu") -> dict:
    """Train one variant for one seed in this process and return its metrics object (plus the mean gates)."""
    from hft_lessons import cli, delta, methods

    recipe = variant_recipe(variant)
    # the variant's recipe is all there is: no SST-2 override on top of it
    methods.TASK_OVERRIDES["sst2"].pop("unipelt", None)
    methods.RECIPES["unipelt"] = recipe
    captured = {}
    original = cli.finish_run

    def finish(model, output, metrics):  # record the gates of the trained model
        captured.update({k: round(sum(v) / len(v), 4) for k, v in delta.gate_values(model).items() if v})
        original(model, output, metrics)

    cli.finish_run = finish
    args = cli.build_parser().parse_args(["finetune", "--task", "sst2", "--method", "unipelt",
                                          "--profile", profile, "--seed", str(seed), "--no-progress"])
    metrics = cli.run_finetune(args)
    return {"variant": variant, **metrics, "mean_gates": captured}


def main(argv: list[str] | None = None) -> int:
    """Run every variant for every seed missing from the results file, one process per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"a subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "unipelt_sst2.jsonl"))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.profile)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        parser.exit(2, f"error: --variants: unknown {', '.join(bad)}; allowed: {', '.join(VARIANTS)}\n")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        for variant in variants:
            rows = ([json.loads(x) for x in results.read_text().splitlines() if x.strip()]
                    if results.exists() else [])
            if any(r["variant"] == variant and r["seed"] == seed for r in rows):
                continue
            proc = subprocess.run([sys.executable, __file__, "--one", variant, str(seed),
                                   "--profile", args.profile],
                                  capture_output=True, text=True, cwd=ROOT, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(variant, seed, row["accuracy"], row["train_seconds"], row["mean_gates"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
