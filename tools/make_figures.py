"""Write the course's diagrams (hft_lessons.diagrams.FIGURES) to book/figures/<name>.svg, byte-identical
on every run; ``--check`` only reports which committed files differ from a fresh render (exit status 1
if any)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hft_lessons.diagrams import FIGURES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "figures"
# Fixed ids and no date in the file, so that a re-run writes the same bytes.
SVG_STYLE = {"svg.hashsalt": "hft-lessons", "svg.fonttype": "path"}


def render(name: str) -> bytes:
    """The SVG of the figure ``name``, deterministic for a given matplotlib version."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES)}")
    with plt.rc_context(SVG_STYLE):
        fig = FIGURES[name]()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) every figure, or those named."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"figures to render (default: all of {', '.join(FIGURES)})")
    parser.add_argument("--check", action="store_true", help="write nothing; list files that differ")
    args = parser.parse_args(argv)
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.names or FIGURES:
        path, svg = OUT / f"{name}.svg", render(name)
        if args.check:
            if not path.exists() or path.read_bytes() != svg:
                stale.append(path.relative_to(ROOT).as_posix())
        else:
            path.write_bytes(svg)
            print(f"wrote {path.relative_to(ROOT)} ({len(svg) / 1024:.0f} KiB)")
    for path in stale:
        print(f"differs from a fresh render: {path} (run python tools/make_figures.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
