"""Execute every chapter in a fresh kernel, in one profile, and write the wall time per chapter.

    HFT_DATA_DIR=/path/to/datasets python benchmarks/course_time.py --profile cpu
    python benchmarks/course_time.py --profile smoke --chapters 01 04 --out /tmp/times.csv

Each notebook runs top to bottom in its own kernel (``nbconvert``'s ExecutePreprocessor), in memory, so the
stored outputs are never touched, unless ``--write-back`` is given: then each chapter that ran without an
error is saved in place and cleaned by ``tools/clean_notebooks.py`` (how CONTRIBUTING.md says to store
outputs). The chapters run in reading order, one after the other, in one environment.
``--cache`` says which run cache (``hft_lessons.run_cache``) they use: ``in-order`` (the default) gives the
whole course one new, empty cache, so a chapter reuses the runs of the chapters before it, as on a learner's
machine that runs the course in order; ``cold`` gives every chapter its own empty cache (each chapter's time
on its own; with ``--cold-from`` an in-order results file, a chapter that reused no run there is not run
again: its in-order time is its cold time); ``user`` uses the cache as it is (``HFT_RUN_CACHE`` or the user's
cache folder). Progress bars are off (``HFT_PROGRESS=off``): stored outputs hold results, not bars. The
results file (CSV) names this script, the command, the machine and the profile in its header lines; the table
is also printed. Run it on an otherwise idle machine: times from a loaded machine are wrong. Before each
chapter it measures the machine's speed (``gflops``: a float32 matrix multiply, :func:`machine_rate`), since a
shared machine can be a quarter slower at one time than at another: compare times measured at different
moments together with it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def chapters(selected: list[str] | None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The chapter notebooks in file order, or only those whose number prefix is in ``selected``."""
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return found
    picked = [p for p in found if p.name[:2] in selected]
    missing = sorted(set(selected) - {p.name[:2] for p in picked})
    if missing:
        raise SystemExit(
            f"no chapter numbered {', '.join(missing)}; have {', '.join(p.name[:2] for p in found)}"
        )
    return picked


REUSED = "[hft_lessons] run cache: reused"  # hft_lessons.run_cache.REUSED (torch stays unimported here)


def reused_runs(nb) -> int:
    """How many training runs an executed notebook loaded from the run cache (its one-line messages)."""
    return sum(line.startswith(REUSED) for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []) if out.get("output_type") == "stream"
               for line in out.get("text", "").splitlines())


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """A results file's rows by chapter (its header lines skipped)."""
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if not x.startswith("#")]
    return {r["chapter"]: r for r in csv.DictReader(lines)}


def machine_rate(size: int = 1024, tries: int = 21) -> float:
    """The machine's speed now: GFLOP/s of a float32 ``size`` x ``size`` matrix multiply (the fastest try)."""
    import torch  # only when a chapter runs (startup speed)

    from hft_lessons.runtime import best_time

    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_time(lambda: a @ b, repeats=tries) / 1e9


def run_chapter(path: Path, timeout: int, write_back: bool = False) -> tuple[float, str, int]:
    """Execute one notebook in a fresh kernel: (seconds, 'ok' or the error, runs reused); save it if asked."""
    import nbformat  # the heavy imports wait until the arguments are known (startup speed)
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    nb = nbformat.read(path, as_version=4)
    runner = ExecutePreprocessor(timeout=timeout, kernel_name="python3")
    start = time.perf_counter()
    status = "ok"
    try:  # the executed copy stays in memory: the stored outputs are never touched
        runner.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    except CellExecutionError as err:
        status = "error: " + str(err).strip().splitlines()[-1][:200]
    except TimeoutError:
        status = f"error: a cell ran over {timeout} s"
    seconds = time.perf_counter() - start
    reused = reused_runs(nb)
    if write_back and status == "ok":
        nbformat.write(nb, path)
        sys.path.insert(0, str(ROOT / "tools"))
        from clean_notebooks import clean

        problems = clean(path)
        if problems:
            status = "error: " + problems[0][:200]
    return seconds, status, reused


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chapters in order, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=["smoke", "cpu", "gpu", "full"])
    parser.add_argument("--chapters", nargs="*", help="number prefixes, e.g. 01 04 (default: all)")
    parser.add_argument(
        "--out", type=Path, help="CSV to write (default: benchmarks/results/course_time_<profile>.csv)"
    )
    parser.add_argument("--cache", choices=["in-order", "cold", "user"], default="in-order",
                        help="one new cache for the course (default), a new one per chapter, or the user's")
    parser.add_argument("--cold-from", type=Path, nargs="+",
                        help="with --cache cold: in-order results files (a later one's rows win); a "
                             "chapter that reused no run there keeps its time (the same work), not run again")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    parser.add_argument("--write-back", action="store_true",
                        help="save each executed chapter in place (cleaned): the stored outputs")
    args = parser.parse_args(argv)
    if args.cold_from and args.cache != "cold":
        parser.error("--cold-from goes with --cache cold")
    known = {}
    for path in args.cold_from or []:
        known.update({name: {**row, "file": path.name} for name, row in read_rows(path).items()})
    os.environ["HFT_PROFILE"] = args.profile
    os.environ["HFT_PROGRESS"] = "off"
    scratch = Path(tempfile.mkdtemp(prefix="hft-course-time-"))
    if args.cache == "in-order":
        os.environ["HFT_RUN_CACHE"] = str(scratch / "course")
    out = args.out or ROOT / "benchmarks" / "results" / f"course_time_{args.profile}.csv"
    rows = []
    for path in chapters(args.chapters, args.notebooks):
        before = known.get(path.stem)
        if before and before["status"] == "ok" and before["runs_reused"] == "0":
            seconds, status, reused, source = float(before["seconds"]), "ok", 0, before["file"]
            rate = before.get("gflops") or ""  # files written before the probe have none
        else:
            if args.cache == "cold":
                os.environ["HFT_RUN_CACHE"] = str(scratch / path.stem)
            rate = f"{machine_rate():.1f}"
            seconds, status, reused = run_chapter(path, args.timeout, args.write_back)
            source = "measured"
        rows.append((path.stem, round(seconds, 1), status, reused, source, rate))
        print(f"{path.stem:45s} {seconds / 60:6.1f} min  {status}  (runs reused: {reused}; {source}; "
              f"machine {rate or '?'} GFLOP/s)", flush=True)
    total = sum(r[1] for r in rows)
    print(f"{'total':45s} {total / 60:6.1f} min")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        f.write(f"# written by benchmarks/course_time.py --profile {args.profile}"
                f"{' --chapters ' + ' '.join(args.chapters) if args.chapters else ''} --cache {args.cache}"
                f"{' --cold-from ' + ' '.join(p.name for p in args.cold_from) if args.cold_from else ''}\n")
        f.write(f"# {dt.date.today()} on {platform.machine()}, {os.cpu_count()} cores, "
                f"python {platform.python_version()}\n")
        writer = csv.writer(f)
        writer.writerow(["chapter", "seconds", "status", "runs_reused", "source", "gflops"])
        writer.writerows(rows)
        writer.writerow(["total", round(total, 1), "ok" if all(r[2] == "ok" for r in rows) else "errors",
                         sum(r[3] for r in rows), "", ""])
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
