"""Write the course's time table into README.md, and each chapter's time line, from the results files.

    python tools/course_time_table.py          # rewrite the README's block and the chapters' time lines
    python tools/course_time_table.py --check  # exit 1 if either is not what the files give
    python tools/course_time_table.py --update-cold  # first copy LATER_RUNS' rows into the cold file

The rows come from ``benchmarks/results/course_time_cpu.csv`` (the chapters in order, sharing a run
cache), the files in ``LATER_RUNS`` (chapters re-run on their own after they changed: they load no run from
the cache, so on their own and in order are the same), ``course_time_cpu_cold.csv`` (each chapter on its own)
and ``t4_estimate.csv`` (the `gpu` profile on a T4, estimated); the time lines also take ``smoke``'s
times from ``course_time_smoke.csv``. A time line is the paragraph that starts with ``**Time**:`` at the end
of a chapter's first cell: this tool writes its first sentence; what follows that sentence is the chapter's.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import textwrap
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- course-time:start -->", "<!-- course-time:end -->"
# chapters executed again on their own after the in-order run; a later file's rows replace the earlier ones
LATER_RUNS = ("course_time_cpu_02.csv", "course_time_cpu_08_12_13.csv", "course_time_cpu_09_10.csv",
              "course_time_cpu_20.csv", "course_time_cpu_20_03.csv")
# chapters that loaded runs in order, run again on their own with an empty cache: their rows replace only the
# cold file's (their in-order time stays the in-order run's)
COLD_RUNS = ("course_time_cpu_20_06_11.csv",)
NOTEBOOKS = ROOT / "notebooks"
# minutes to read a chapter and do its exercises: the authors' estimate, not a measurement
READING = {"01": 25, "02": 40, "03": 35, "04": 35, "05": 40, "06": 50, "07": 40, "08": 30, "09": 30, "10": 30,
           "11": 35, "12": 45, "13": 50}
# the chapters whose runs a chapter loads from the run cache when the course runs in order
REUSES = {"06": "chapters 4 and 5", "07": "chapters 4–6", "11": "chapters 4–7"}
T4_NOTE = "(an estimate, not yet measured: `benchmarks/t4_estimate.py`)."
WIDTH = 115  # the markdown cells' line width
sys.path.insert(0, str(ROOT / "benchmarks"))  # course_time.read_rows: one reader of the results files
sys.path.insert(0, str(ROOT / "tools"))  # clean_notebooks.save_notebook: one notebook writer
from clean_notebooks import save_notebook  # noqa: E402


def writer(name: str) -> str:
    """The script that writes the results file ``name``."""
    return "benchmarks/t4_estimate.py" if name.startswith("t4_estimate") else "benchmarks/course_time.py"


def read(name: str) -> dict[str, dict[str, str]]:
    """A results file's rows by chapter, the total row left out (benchmarks/course_time.py reads them)."""
    from course_time import read_rows

    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"no results file {path}: write it with {writer(name)}")
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
    """Seconds as minutes with one decimal, halves rounded up (555 s is 9.3 min, not float's 9.2)."""
    tenths = Decimal(repr(seconds)) / 6
    return str((tenths.quantize(Decimal(1), rounding=ROUND_HALF_UP) / 10).quantize(Decimal("0.1")))


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


def short_time(seconds: float) -> str:
    """A running time as a learner reads it: seconds under 1.5 minutes, else minutes with one decimal."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{minutes(seconds)} min"


# the results files a time line reads, by the role they play in it
TIME_FILES = {"smoke": "course_time_smoke.csv", "cold": "course_time_cpu_cold.csv",
              "in order": "course_time_cpu.csv", "t4": "t4_estimate.csv"}


def row(rows: dict[str, dict[str, str]], chapter: str, name: str) -> dict[str, str]:
    """``chapter``'s row of the results file ``name``, or a one-line error naming the file and its writer."""
    if chapter not in rows:
        raise SystemExit(f"{name} has no row for {chapter}: run {writer(name)} for it")
    return rows[chapter]


def time_sentence(chapter: str, files: dict[str, dict[str, dict[str, str]]]) -> str:
    """The first sentence of a chapter's time line, from the results files (``files``: rows by role)."""
    smoke, cold, in_order, t4 = (row(files[role], chapter, TIME_FILES[role]) for role in TIME_FILES)
    cpu = f"`cpu` {short_time(float(cold['seconds']))} measured on 2 idle cores"
    if int(in_order["runs_reused"]):
        if chapter[:2] not in REUSES:
            raise SystemExit(f"{chapter} loads runs from the cache in order: add to REUSES which "
                             "chapters train them")
        after = short_time(float(in_order["seconds"]))
        cpu += f" ({after} run after {REUSES[chapter[:2]]}, whose runs it loads from the run cache)"
    t4_min = float(t4["t4_estimated_s"]) / 60
    gpu = "< 1 min" if t4_min < 1 else f"~{round(t4_min)} min"
    smoke_time = short_time(float(smoke["seconds"]))
    return (f"**Time**: reading ~{READING[chapter[:2]]} min; running, with the model and data on disk: "
            f"`smoke` {smoke_time}, {cpu}, `gpu` {gpu} on a free Colab T4 {T4_NOTE}")


def with_time_line(source: str, chapter: str, sentence: str) -> str:
    """A first cell's text with its last paragraph, the time line, starting with ``sentence``, rewrapped."""
    found = re.search(r"(?:\A|\n\n)(\*\*Time\*\*:(?:(?!\n\n)[\s\S])*)\Z", source.rstrip("\n"))
    if not found:
        raise SystemExit(f"{chapter}: its first cell must end with a paragraph that starts with '**Time**:'")
    old = found.group(1)
    if T4_NOTE not in " ".join(old.split()) or re.search(r" {2}\n|\\\n|\n\s*([-+*>#]|\d+[.)])\s", old):
        raise SystemExit(f"{chapter}: its time line must be one plain paragraph with a sentence ending in "
                         f"{T4_NOTE!r}")
    rest = " ".join(old.split()).split(T4_NOTE, 1)[1]
    lines = textwrap.wrap(sentence + rest, WIDTH, break_long_words=False, break_on_hyphens=False)
    if any(re.match(r"([-+*>#]|\d+[.)])\s", line) for line in lines[1:]):
        raise SystemExit(f"{chapter}: a wrapped line of its time line would start a markdown block; "
                         "reword the paragraph")
    return source[:found.start(1)] + "\n".join(lines)


def time_lines(write: bool) -> list[str]:
    """Rewrite (or, ``write`` False, only compare) every chapter's time line; the chapters that differed."""
    files = {role: in_order_rows() if role == "in order" else read(name) for role, name in TIME_FILES.items()}
    changed: dict[Path, dict] = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if path.stem.startswith("00_"):
            continue  # chapter 0, the guide to the book, has no time line
        if path.stem[:2] not in READING:
            raise SystemExit(f"{path.stem}: add its reading time to READING in tools/course_time_table.py")
        nb = json.loads(path.read_text(encoding="utf-8"))
        source = "".join(nb["cells"][0]["source"])
        new = with_time_line(source, path.stem, time_sentence(path.stem, files))
        if new != source:
            nb["cells"][0]["source"] = new.splitlines(keepends=True)
            changed[path] = nb
    if write:  # every line computed first: an error above leaves no notebook half-written
        for path, nb in changed.items():
            save_notebook(path, nb)
    return [p.stem for p in changed]


def update_cold() -> None:
    """Put the later runs' rows into ``course_time_cpu_cold.csv`` (``source``: the later file), new total."""
    path = RESULTS / "course_time_cpu_cold.csv"
    rows = read("course_time_cpu_cold.csv")  # first: a missing file is a one-line error
    header = [x for x in path.read_text(encoding="utf-8").splitlines() if x.startswith("#")]
    for name in (*LATER_RUNS, *COLD_RUNS):
        for chapter, later in read(name).items():
            if later["status"] != "ok":
                raise SystemExit(f"{name}: {chapter} did not run to the end ({later['status']}); only an ok "
                                 "run may replace a chapter's time")
            rows[chapter] = {**later, "source": name}
    fields = ["chapter", "seconds", "status", "runs_reused", "source", "gflops"]
    total = {"chapter": "total", "seconds": f"{sum(float(r['seconds']) for r in rows.values()):.1f}",
             "status": "ok" if all(r["status"] == "ok" for r in rows.values()) else "errors",
             "runs_reused": str(sum(int(r["runs_reused"]) for r in rows.values())), "source": "",
             "gflops": ""}
    files = ", ".join((*LATER_RUNS, *COLD_RUNS))
    note = f"# rows of {files} copied in by tools/course_time_table.py --update-cold"
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("\n".join([*(h for h in header if not h.startswith("# rows of")), note]) + "\n")
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows([{k: r.get(k) or "" for k in fields} for r in [*rows.values(), total]])


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or check) the README's block and the chapters' time lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if README.md's table or a chapter's time line is out of date")
    mode.add_argument("--update-cold", action="store_true",
                      help="first copy the rows of LATER_RUNS and COLD_RUNS into course_time_cpu_cold.csv")
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
        stale = (["README.md"] if new != text else []) + time_lines(write=False)
        if stale:
            print(f"{', '.join(stale)}: the course times differ from the results files; "
                  "run tools/course_time_table.py")
            return 1
        return 0
    time_lines(write=True)  # first: it stops, writing nothing, on an error
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
