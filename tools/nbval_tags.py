"""Move nbval markers out of the code a reader sees into nbval's cell tags.

``# NBVAL_IGNORE_OUTPUT`` (and the other nbval comment markers) on a code cell's first lines become the tags
``nbval-ignore-output`` (…), and the comment lines are removed. Outputs and other metadata are untouched.

    python tools/nbval_tags.py notebooks/*.ipynb          # rewrite in place
    python tools/nbval_tags.py --check notebooks/*.ipynb  # exit 1 if any cell still carries a comment marker
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

MARKER = re.compile(r"^\s*#\s*NBVAL_(IGNORE_OUTPUT|CHECK_OUTPUT|SKIP|RAISES_EXCEPTION)\s*$")


def tag_name(marker: str) -> str:
    """``IGNORE_OUTPUT`` -> ``nbval-ignore-output``."""
    return "nbval-" + marker.lower().replace("_", "-")


def migrate_cell(cell: nbformat.NotebookNode) -> bool:
    """Strip leading marker comments from one code cell, adding the tags; True if the cell changed."""
    if cell.cell_type != "code":
        return False
    lines = cell.source.split("\n")
    tags = list(cell.metadata.get("tags", []))
    changed = False
    while lines and (match := MARKER.match(lines[0])):
        tag = tag_name(match.group(1))
        if tag not in tags:
            tags.append(tag)
        lines.pop(0)
        changed = True
    if changed:
        cell.source = "\n".join(lines)
        cell.metadata["tags"] = tags
    return changed


def markers_left(nb: nbformat.NotebookNode) -> int:
    """How many code cells still carry an nbval comment marker on any line."""
    return sum(
        any(MARKER.match(line) for line in cell.source.split("\n"))
        for cell in nb.cells
        if cell.cell_type == "code"
    )


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, inspect) the given notebooks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report cells that still carry markers")
    args = parser.parse_args(argv)
    left = 0
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            n = markers_left(nb)
            left += n
            if n:
                print(f"{path}: {n} code cell(s) carry an NBVAL_ comment; run tools/nbval_tags.py {path}")
            continue
        changed = sum(migrate_cell(cell) for cell in nb.cells)
        if changed:
            nbformat.write(nb, path)
            print(f"{path}: {changed} cell(s) moved to tags")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
