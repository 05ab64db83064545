"""Write the course's time table into README.md from the committed results files.

    python tools/course_time_table.py          # rewrite the block between the course-time markers
    python tools/course_time_table.py --check  # exit 1 if the README's table is not what the files give
    python tools/course_time_table.py --update-cold  # first copy LATER_RUNS' rows into the cold file

The rows come from ``benchmarks/results/course_time_cpu.csv`` (the chapters in order, sharing a run
cache), the files in ``LATER_RUNS`` (chapters re-run on their own after they changed: they load no run from
the cache, so on their own and in order are the same), ``course_time_cpu_cold.csv`` (each chapter on its own)
and ``t4_estimate.csv`` (the `gpu` profile on a T4, estimated).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- course-time:start -->", "<!-- course-time:end -->"
# chapters executed again on their own after the in-order run; a later file's rows replace the earlier ones
LATER_RUNS = ("course_time_cpu_08_12_13.csv",)
sys.path.insert(0, str(ROOT / "benchmarks"))  # course_time.read_rows: one reader of the results files


def read(name: str) -> dict[str, dict[str, str]]:
    """A results file's rows by chapter, the total row left out (benchmarks/course_time.py reads them)."""
    from course_time import read_rows

    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"no results file {path}: write it with benchmarks/course_time.py")
    return {chapter: r for chapter, r in read_rows(path).items() if chapter != "total"}


def in_order_rows() -> dict[str, dict[str, str]]:
    """Each chapter's row of the in-order run, or of its later run on its own (``LATER_RUNS``)."""
    rows = read("course_time_cpu.csv")
    for name in LATER_RUNS:
        for chapter, row in read(name).items():
            if row["status"] != "ok" or rows.get(chapter, {}).get("runs_reused", "0") != "0":
                raise SystemExit(f"{name}: {chapter} cannot replace its in-order row (a later run must be "
                                 "ok, and only a chapter that loaded no run in order can be re-run alone)")
            rows[chapter] = row
    return rows


def minutes(seconds: float) -> str:
    """Seconds as minutes with one decimal."""
    return f"{seconds / 60:.1f}"


def table() -> str:
    """The markdown table: one row per chapter, then the totals."""
    in_order = in_order_rows()
    cold, t4 = read("course_time_cpu_cold.csv"), read("t4_estimate.csv")
    lines = ["| chapter | `cpu`, on its own (min) | `cpu`, in order (min) | runs loaded from the cache | "
             "`gpu` on a T4, estimated (min) |", "|---|---|---|---|---|"]
    totals = [0.0, 0.0, 0.0]
    for chapter, row in cold.items():
        number = int(chapter[:2])
        seconds = (float(row["seconds"]), float(in_order[chapter]["seconds"]),
                   float(t4[chapter]["t4_estimated_s"]))
        totals = [a + b for a, b in zip(totals, seconds, strict=True)]
        lines.append(f"| {number} | {minutes(seconds[0])} | {minutes(seconds[1])} | "
                     f"{in_order[chapter]['runs_reused']} | {minutes(seconds[2])} |")
    lines.append(f"| **all** | **{minutes(totals[0])}** | **{minutes(totals[1])}** | | "
                 f"**{minutes(totals[2])}** |")
    return "\n".join(lines)


def update_cold() -> None:
    """Put the later runs' rows into ``course_time_cpu_cold.csv`` (``source``: the later file), new total."""
    path = RESULTS / "course_time_cpu_cold.csv"
    header = [x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("#")]
    rows = read("course_time_cpu_cold.csv")
    for name in LATER_RUNS:
        for chapter, row in read(name).items():
            rows[chapter] = {**row, "source": name}
    fields = ["chapter", "seconds", "status", "runs_reused", "source", "gflops"]
    total = {"chapter": "total", "seconds": f"{sum(float(r['seconds']) for r in rows.values()):.1f}",
             "status": "ok" if all(r["status"] == "ok" for r in rows.values()) else "errors",
             "runs_reused": str(sum(int(r["runs_reused"]) for r in rows.values())), "source": "",
             "gflops": ""}
    note = f"# rows of {', '.join(LATER_RUNS)} copied in by tools/course_time_table.py --update-cold"
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("\n".join([*(h for h in header if not h.startswith("# rows of")), note]) + "\n")
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows([{k: r.get(k) or "" for k in fields} for r in [*rows.values(), total]])


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or check) the README's block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's table is out of date")
    mode.add_argument("--update-cold", action="store_true",
                      help="first copy the rows of LATER_RUNS into course_time_cpu_cold.csv")
    args = parser.parse_args(argv)
    if args.update_cold:
        update_cold()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"README.md needs the lines {START} and {END} around the table")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if args.check:
        if new != text:
            print("README.md's course-time table differs from the results files: "
                  "run tools/course_time_table.py")
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
