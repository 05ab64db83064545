"""Write the Benchmarks page's tables (book/benchmarks.md) from benchmarks/results/: the trainers from
trainer_speed.csv, chapter 7's seeds from sst2_seeds.jsonl.

    python tools/benchmark_table.py           # rewrite the tables between the page's markers
    python tools/benchmark_table.py --check   # exit 1 if the page and the results files disagree
"""

from __future__ import annotations

import csv
import importlib.util
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "benchmarks" / "results" / "trainer_speed.csv"
PAGE = ROOT / "book" / "benchmarks.md"
SEEDS = ROOT / "benchmarks" / "results" / "sst2_seeds.jsonl"
MARKERS = re.compile(r"(<!-- table:start -->\n).*?(<!-- table:end -->)", re.S)
SEED_MARKERS = re.compile(r"(<!-- seeds:start -->\n).*?(<!-- seeds:end -->)", re.S)
SEED_METHODS = {"full": "full fine-tuning (100%)", "hybrid": "hybrid, LoRA on all six projections + BitFit"}
RUNNER_NAMES = {"hf_default": "`Trainer`, default", "hf_grouped": "`Trainer`, `group_by_length`",
                "course": "course trainer, default", "course_fast": "course trainer, `fast_cpu=True`"}
ORDER = ("hf_default", "hf_grouped", "course", "course_fast")


def load(path: Path = CSV) -> list[dict[str, str]]:
    """The results rows."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _seeds(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    return (f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
            else ", ".join(map(str, seeds)))


def table(rows: list[dict[str, str]]) -> str:
    """One markdown row per (method, runner, sampler): runs, seeds, accuracy and the median speed."""
    lines = ["| method | trainer | batches | runs (seeds) | accuracy: mean | median | sd "
             "| examples/s: median (runs timed) |", "|---|---|---|---|---|---|---|---|"]
    groups = sorted({(r["method"], r["runner"], r["sampler"]) for r in rows},
                    key=lambda k: (k[0], ORDER.index(k[1]), k[2]))
    for method, runner, sampler in groups:
        runs = [r for r in rows if (r["method"], r["runner"], r["sampler"]) == (method, runner, sampler)]
        acc = [float(r["accuracy"]) for r in runs]
        speed = [float(r["examples_per_second"]) for r in runs if r["examples_per_second"]]
        sd = f"{statistics.stdev(acc):.4f}" if len(acc) > 1 else "—"
        fast = f"{statistics.median(speed):.1f} ({len(speed)})" if speed else "—"
        lines.append(f"| {method} | {RUNNER_NAMES[runner]} | {sampler} | {len(runs)} "
                     f"({_seeds([int(r['seed']) for r in runs])}) "
                     f"| {statistics.mean(acc):.4f} | {statistics.median(acc):.4f} | {sd} | {fast} |")
    return "\n".join(lines)


def _sst2_seeds():
    """benchmarks/sst2_seeds.py as a module: it reads its results file and writes the summary lines."""
    spec = importlib.util.spec_from_file_location("sst2_seeds", ROOT / "benchmarks" / "sst2_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def load_seeds(path: Path = SEEDS) -> list[dict]:
    """The runs of benchmarks/sst2_seeds.py (its own reader)."""
    return _sst2_seeds().read_rows(path)


def seeds_table(runs: list[dict]) -> str:
    """Accuracy in % per method and seed, the mean, and the summary line of benchmarks/sst2_seeds.py."""
    seeds = sorted({r["seed"] for r in runs})
    lines = ["| seed | " + " | ".join(map(str, seeds)) + " | mean |", "|---" * (len(seeds) + 2) + "|"]
    for method, name in SEED_METHODS.items():
        acc = {r["seed"]: 100 * r["accuracy"] for r in runs if r["method"] == method}
        cells = [f"{acc[s]:.1f}" if s in acc else "—" for s in seeds]
        share = next(100 * r["trainable_params"] / r["total_params"] for r in runs if r["method"] == method)
        label = name if method == "full" else f"{name} ({share:.2f}%)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {statistics.mean(acc.values()):.1f} |")
    summary = "\n".join(f"- {line}" for line in _sst2_seeds().summary(runs).splitlines())
    return "\n".join(lines) + "\n\n" + summary


def render(page: str, rows: list[dict[str, str]], runs: list[dict]) -> str:
    """The page with its tables regenerated from the results."""
    for markers, name in ((MARKERS, "table"), (SEED_MARKERS, "seeds")):
        if not markers.search(page):
            raise ValueError(f"{PAGE.name} has no '<!-- {name}:start -->' / '<!-- {name}:end -->' markers")
    page = MARKERS.sub(lambda m: m.group(1) + table(rows) + "\n" + m.group(2), page)
    return SEED_MARKERS.sub(lambda m: m.group(1) + seeds_table(runs) + "\n" + m.group(2), page)


if __name__ == "__main__":
    text = PAGE.read_text(encoding="utf-8")
    new = render(text, load(), load_seeds())
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    PAGE.write_text(new, encoding="utf-8")
    print(table(load()))
