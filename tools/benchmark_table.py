"""Write the Benchmarks page's table (book/benchmarks.md) from benchmarks/results/trainer_speed.csv.

    python tools/benchmark_table.py           # rewrite the table between the page's markers
    python tools/benchmark_table.py --check   # exit 1 if the page and the CSV disagree
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "benchmarks" / "results" / "trainer_speed.csv"
PAGE = ROOT / "book" / "benchmarks.md"
MARKERS = re.compile(r"(<!-- table:start -->\n).*?(<!-- table:end -->)", re.S)
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


def render(page: str, rows: list[dict[str, str]]) -> str:
    """The page with its table regenerated from the rows."""
    if not MARKERS.search(page):
        raise ValueError(f"{PAGE.name} has no '<!-- table:start -->' / '<!-- table:end -->' markers")
    return MARKERS.sub(lambda m: m.group(1) + table(rows) + "\n" + m.group(2), page)


if __name__ == "__main__":
    text = PAGE.read_text(encoding="utf-8")
    new = render(text, load())
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    PAGE.write_text(new, encoding="utf-8")
    print(table(load()))
